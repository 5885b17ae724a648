"""The background Worker: starts, handles, stops cleanly, and rides out a Redis restart without losing entries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.protos.intervene.v1 import queue_pb2
from shared.queues import ROLLOUT_REQUESTED, Delivery, Worker, WorkQueue
from tests.shared.queues.helpers import apply_effect, effects, fast_settings, queue, request
from tools.redis_process import RedisProcess


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_worker_handles_entries_and_stops(redis_url: str) -> None:
    work = queue(redis_url)
    seen: list[str] = []
    worker = Worker(work, "workers", "w1", batch_handler=lambda batch: seen.extend(d.message.rollout_id for d in batch))
    worker.start()
    try:
        work.produce_many([request(i) for i in range(35)])
        wait_for(lambda: work.client.xlen(work.stream) == 0)
    finally:
        worker.stop(timeout_s=5)
    assert not worker.running
    assert seen == [f"r{i}" for i in range(35)]
    assert worker.succeeded == 35 and worker.failed == 0


def test_worker_needs_exactly_one_handler(redis_url: str) -> None:
    with pytest.raises(ValueError, match="exactly one of handler"):
        Worker(queue(redis_url), "workers", "w1")


def test_redis_restart_mid_consume_loses_nothing(own_redis: RedisProcess, caplog: pytest.LogCaptureFixture) -> None:
    # No client-side retries, so the outage reaches the Worker itself (redis-py would otherwise hide a short one).
    client = redis.Redis.from_url(own_redis.url, retry=Retry(NoBackoff(), 0))
    work = WorkQueue(client, ROLLOUT_REQUESTED, settings=fast_settings())
    total = 300
    work.produce_many([request(i) for i in range(total)])
    effect_client = redis.Redis.from_url(own_redis.url)

    def handle(delivery: Delivery[queue_pb2.RolloutRequested]) -> None:
        apply_effect(effect_client, delivery.message.rollout_id)
        time.sleep(0.001)  # slow enough that the kill lands mid-stream

    worker = Worker(work, "workers", "w1", handle)
    worker.start()
    try:
        wait_for(lambda: effects(effect_client) >= 50)
        own_redis.kill()
        time.sleep(0.2)
        own_redis.start()
        done_at_restart = effects(effect_client)
        wait_for(lambda: effects(effect_client) == total and client.xlen(work.stream) == 0)
    finally:
        worker.stop(timeout_s=5)
    assert done_at_restart < total, "the restart happened mid-stream"
    assert "Redis unreachable" in caplog.text
    assert not worker.running
    assert client.xpending(work.stream, "workers")["pending"] == 0
    assert all(client.exists(f"test:done:r{i}") for i in range(total))


def test_slow_handler_keeps_its_entries(redis_url: str) -> None:
    work = queue(redis_url, claim_idle_ms=600)
    entry_id = work.produce(request(1))
    thief = queue(redis_url, claim_idle_ms=600)
    started, calls = threading.Event(), []

    def slow(delivery: Delivery[queue_pb2.RolloutRequested]) -> None:
        calls.append(delivery.deliveries)
        started.set()
        time.sleep(2.0)  # over three times claim_idle_ms

    worker = Worker(work, "workers", "slow", slow)
    worker.start()
    stolen = []
    try:
        assert started.wait(10)
        while worker.succeeded == 0:
            stolen += thief.reclaim("workers", "thief")
            time.sleep(0.05)
    finally:
        worker.stop(timeout_s=5)
    assert stolen == [] and calls == [1], "the heartbeat kept the entry with its consumer"
    assert work.client.xlen(work.stream) == 0
    assert not work.client.xrange(work.stream, min=entry_id, max=entry_id)
