"""Poison entries go to `<stream>.dead` with their error; the rest flow through; dead letters can be requeued."""

from __future__ import annotations

import time

import pytest
import redis

from shared.protos.intervene.v1 import queue_pb2
from shared.queues import BackPressureError, Delivery, dead_letters, requeue_dead
from shared.queues.codec import type_name
from tests.shared.queues.helpers import apply_effect, drain, effects, queue, request

TYPE = type_name(queue_pb2.RolloutRequested)


def test_poison_entries_are_dead_lettered_and_the_rest_flow(redis_url: str) -> None:
    work = queue(redis_url, max_deliveries=3)
    work.produce_many([request(i) for i in range(3)])
    garbage_id = work.client.xadd(work.stream, {b"body": b"\x0a\xff", b"type": TYPE}).decode()
    wrong_type_id = work.client.xadd(work.stream, {b"body": b"", b"type": b"intervene.v1.PairCreated"}).decode()
    poison_id = work.produce(request(99))
    work.produce_many([request(i) for i in range(3, 6)])

    calls: list[str] = []

    def handle(delivery: Delivery[queue_pb2.RolloutRequested]) -> None:
        calls.append(delivery.message.rollout_id)
        if delivery.message.rollout_id == "r99":
            raise RuntimeError("cannot handle r99")
        apply_effect(work.client, delivery.message.rollout_id)

    drain(work, "workers", "c", handle)

    assert effects(work.client) == 6 and all(calls.count(f"r{i}") == 1 for i in range(6))
    assert calls.count("r99") == 3, "handled max_deliveries times, then dead-lettered"
    assert work.client.xpending(work.stream, "workers")["pending"] == 0
    letters = {letter.entry_id: letter for letter in dead_letters(work.client, work.stream)}
    assert set(letters) == {garbage_id, wrong_type_id, poison_id}
    assert letters[poison_id].deliveries == 3 and letters[poison_id].error == "RuntimeError: cannot handle r99"
    assert letters[poison_id].body == request(99).SerializeToString()
    assert letters[garbage_id].deliveries == 1 and "body is not a valid intervene.v1.RolloutRequested" in (
        letters[garbage_id].error
    )
    assert "entry type is intervene.v1.PairCreated" in letters[wrong_type_id].error
    assert {(letter.stream, letter.group) for letter in letters.values()} == {("rollout.requested", "workers")}
    assert not work.client.exists(f"{work.stream}.errors"), "retry errors are forgotten once an entry is settled"

    # The handler is fixed: requeue the poison entry alone, then everything that is left.
    assert requeue_dead(work.client, work.stream, [letters[poison_id].dead_id]) == 1
    drain(work, "workers", "c", lambda d: apply_effect(work.client, d.message.rollout_id))
    assert effects(work.client) == 7
    assert work.requeue_dead("all") == 2
    assert work.client.xlen(f"{work.stream}.dead") == 0
    drain(work, "workers", "c", lambda d: None)
    assert {letter.entry_id for letter in dead_letters(work.client, work.stream)} != {garbage_id, wrong_type_id}
    assert len(dead_letters(work.client, work.stream)) == 2, "still undecodable after requeueing"


def test_entry_whose_consumers_keep_dying_is_dead_lettered_with_its_last_error(redis_url: str) -> None:
    work = queue(redis_url, max_deliveries=2, claim_idle_ms=1)
    entry_id = work.produce(request(1))
    [first] = work.read("workers", "a", block_ms=0)
    work.fail("workers", [(first, "TimeoutError: model server did not answer")])
    time.sleep(0.01)  # let the entry sit idle past claim_idle_ms
    [second] = work.reclaim("workers", "b")  # b dies while handling it
    assert second.deliveries == 2
    time.sleep(0.01)
    assert work.reclaim("workers", "c") == []
    [letter] = dead_letters(work.client, work.stream)
    assert (letter.entry_id, letter.deliveries) == (entry_id, 3)
    assert letter.error == (
        "delivered 3 times without being acknowledged (max 2); last handler error: "
        "TimeoutError: model server did not answer"
    )
    assert work.client.xlen(work.stream) == 0


def test_batch_handler_reports_failures_per_entry(redis_url: str) -> None:
    work = queue(redis_url, max_deliveries=1)
    ids = work.produce_many([request(i) for i in range(4)])
    result = work.consume_batch("workers", "c", lambda batch: {batch[1].entry_id: "ValueError: bad prompt"})
    assert (result.acked, result.failed, result.dead_lettered) == (3, 1, 1)
    [letter] = dead_letters(work.client, work.stream)
    assert (letter.entry_id, letter.error) == (ids[1], "ValueError: bad prompt")


def test_requeue_respects_the_cap(redis_url: str) -> None:
    work = queue(redis_url, max_deliveries=1, max_length=2)
    work.produce_many([request(1), request(2)])
    work.consume_batch("workers", "c", lambda batch: {d.entry_id: "boom" for d in batch})
    work.produce_many([request(3), request(4)])
    with pytest.raises(BackPressureError, match="cap is 2"):
        requeue_dead(redis.Redis.from_url(redis_url), work.stream, "all", settings=work.settings)
    assert work.client.xlen(f"{work.stream}.dead") == 2
