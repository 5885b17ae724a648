"""Producing: protobuf bodies with their type, and back-pressure at the cap instead of growth or trimming."""

from __future__ import annotations

import time

import pytest
import redis

from shared.protos.intervene.v1 import queue_pb2
from shared.queues import PAIR_CREATED, ROLLOUT_REQUESTED, BackPressureError, GroupLag, WorkQueue, stream_lag
from tests.shared.queues.helpers import fast_settings, queue, request


def test_entry_holds_protobuf_bytes_and_type_and_round_trips(redis_url: str) -> None:
    work = queue(redis_url)
    entry_id = work.produce(request(1))
    [(raw_id, fields)] = work.client.xrange(work.stream)
    assert raw_id.decode() == entry_id
    assert fields == {b"body": request(1).SerializeToString(), b"type": b"intervene.v1.RolloutRequested"}
    [delivery] = work.read("g", "c", block_ms=0)
    assert (delivery.entry_id, delivery.message, delivery.deliveries) == (entry_id, request(1), 1)


def test_wrong_message_type_is_refused(redis_url: str) -> None:
    with pytest.raises(TypeError, match=r"carries intervene\.v1\.RolloutRequested"):
        queue(redis_url).produce(queue_pb2.PairCreated())


def test_unknown_stream_and_text_client_are_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="unknown stream 'rollouts'"):
        WorkQueue(redis.Redis.from_url(redis_url), "rollouts")
    with pytest.raises(ValueError, match="decode_responses=False"):
        WorkQueue(redis.Redis.from_url(redis_url, decode_responses=True), PAIR_CREATED)
    with pytest.raises(ValueError, match="socket_timeout"):
        WorkQueue(
            redis.Redis.from_url(redis_url, socket_timeout=0.5), PAIR_CREATED, settings=fast_settings(block_ms=1000)
        )


def test_full_stream_refuses_until_consumers_catch_up(redis_url: str) -> None:
    work = queue(redis_url, max_length=5)
    work.produce_many([request(i) for i in range(4)])
    with pytest.raises(BackPressureError) as refused:
        work.produce_many([request(4), request(5)])
    message = str(refused.value)
    assert "'rollout.requested' holds 4" in message and "cap is 5" in message and "consumers are behind" in message
    assert work.client.xlen(work.stream) == 4, "a refused batch adds nothing"

    work.produce(request(4))
    with pytest.raises(BackPressureError):
        work.produce(request(5))
    assert work.client.xlen(work.stream) == 5

    read = work.read("g", "c", count=2, block_ms=0)
    with pytest.raises(BackPressureError):
        work.produce(request(5))  # delivered but unacknowledged entries are still outstanding work
    work.ack("g", [d.entry_id for d in read])
    assert work.client.xlen(work.stream) == 3
    work.produce_many([request(5), request(6)])
    assert work.client.xlen(work.stream) == 5
    assert [d.message.rollout_id for d in work.read("g", "c", count=10, block_ms=0)] == ["r2", "r3", "r4", "r5", "r6"]


def test_large_produce_is_chunked_and_keeps_order(redis_url: str) -> None:
    work = queue(redis_url)
    ids = work.produce_many([request(i) for i in range(2500)])
    assert len(ids) == 2500 == work.client.xlen(work.stream)
    assert [d.message.rollout_id for d in work.read("g", "c", count=3000, block_ms=0)] == [f"r{i}" for i in range(2500)]


def test_resp3_client_reads_the_same(redis_url: str) -> None:
    work = WorkQueue(redis.Redis.from_url(redis_url, protocol=3), ROLLOUT_REQUESTED, settings=fast_settings())
    work.produce_many([request(1), request(2)])
    assert [d.message.rollout_id for d in work.read("g", "a", count=1)] == ["r1"]
    assert stream_lag(work.client, work.stream).groups == (GroupLag("g", 1, 1, 1),)
    time.sleep(0.06)  # past claim_idle_ms
    [reclaimed] = work.reclaim("g", "b")
    assert (reclaimed.message.rollout_id, reclaimed.deliveries) == ("r1", 2)
