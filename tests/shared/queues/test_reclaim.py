"""A consumer that dies before acking: another reclaims its entries and the effect happens exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.shared.queues.helpers import drain, effect_handler, effects, queue, request

REPO = Path(__file__).resolve().parents[3]


def test_entries_of_a_consumer_that_never_acks_are_reclaimed_once(redis_url: str) -> None:
    work = queue(redis_url)
    work.produce_many([request(i) for i in range(25)])
    held = work.read("workers", "a", count=10, block_ms=0)  # consumer a stops here, as if killed

    calls: list[str] = []
    drain(work, "workers", "b", effect_handler(work.client, calls))

    assert effects(work.client) == 25
    assert sorted(calls) == sorted(f"r{i}" for i in range(25)), "each entry handled exactly once by b"
    assert work.client.xpending(work.stream, "workers")["pending"] == 0
    assert {d.message.rollout_id for d in held} == {f"r{i}" for i in range(10)}


def test_reclaimed_entry_reports_its_delivery_count(redis_url: str) -> None:
    work = queue(redis_url, claim_idle_ms=1)
    entry_id = work.produce(request(1))
    work.read("workers", "a", block_ms=0)
    time.sleep(0.01)  # let the entry sit idle past claim_idle_ms
    [first] = work.reclaim("workers", "b")
    time.sleep(0.01)
    [second] = work.reclaim("workers", "c")
    assert (first.entry_id, first.deliveries, second.deliveries) == (entry_id, 2, 3)


def test_consumer_killed_with_sigkill_before_ack(redis_url: str) -> None:
    work = queue(redis_url)
    work.produce_many([request(i) for i in range(30)])
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.shared.queues.killed_consumer", redis_url, "20"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY 20"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert effects(work.client) == 10, "the child applied half its batch before dying"
    assert work.client.xpending(work.stream, "workers")["pending"] == 20

    calls: list[str] = []
    drain(work, "workers", "survivor", effect_handler(redis.Redis.from_url(redis_url), calls))

    assert effects(work.client) == 30, "every effect exactly once, including the ten the child had applied"
    assert sorted(calls) == sorted(f"r{i}" for i in range(30))
    assert work.client.xpending(work.stream, "workers")["pending"] == 0
    assert work.client.xlen(work.stream) == 0
