"""Shared pieces of the queue tests: fast settings, messages, and an idempotent effect that counts."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from shared.config.base import QueueSettings
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import ROLLOUT_REQUESTED, Delivery, WorkQueue

EFFECTS = "test:effects"


def fast_settings(**overrides: int) -> QueueSettings:
    """Settings that make reclaiming and blocking take milliseconds instead of seconds."""
    values = {"batch_size": 10, "block_ms": 20, "claim_idle_ms": 50, "max_deliveries": 3, "max_length": 10_000}
    values.update(overrides)
    return QueueSettings(**values)


def request(i: int) -> queue_pb2.RolloutRequested:
    """A small rollout request whose rollout id is `r<i>`."""
    return queue_pb2.RolloutRequested(
        job_id="job", rollout_id=f"r{i}", prompt=common_pb2.Prompt(id=f"p{i}", text="a harmless prompt")
    )


def queue(url: str, **overrides: int) -> WorkQueue[queue_pb2.RolloutRequested]:
    """A `rollout.requested` queue on a fresh client with fast settings."""
    return WorkQueue(redis.Redis.from_url(url), ROLLOUT_REQUESTED, settings=fast_settings(**overrides))


# Atomic, so that a connection lost between marking and counting cannot leave a mark uncounted.
_EFFECT = """
if redis.call('SET', KEYS[1], 1, 'NX') then return redis.call('INCR', KEYS[2]) end
return 0
"""


def apply_effect(client: redis.Redis, rollout_id: str) -> bool:
    """The consumer's idempotent effect: marks the rollout done once and counts first times only."""
    return bool(client.eval(_EFFECT, 2, f"test:done:{rollout_id}", EFFECTS))


def effect_handler(client: redis.Redis, calls: list[str]) -> Callable[[Delivery[queue_pb2.RolloutRequested]], None]:
    """A handler that records each call and applies the idempotent effect."""

    def handle(delivery: Delivery[queue_pb2.RolloutRequested]) -> None:
        calls.append(delivery.message.rollout_id)
        apply_effect(client, delivery.message.rollout_id)

    return handle


def effects(client: redis.Redis) -> int:
    """How many distinct effects were applied."""
    return int(client.get(EFFECTS) or 0)


def drain(work: WorkQueue, group: str, consumer: str, handler: Callable, timeout_s: float = 10.0) -> None:
    """Consumes rounds until the stream holds no outstanding entries (or fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while work.client.xlen(work.stream) > 0:
        assert time.monotonic() < deadline, f"stream {work.stream} still holds {work.client.xlen(work.stream)} entries"
        work.consume(group, consumer, handler)
