"""A Worker whose output stream is full holds its batch until there is room: back-pressure slows it down, and its
entries are neither failed nor dead-lettered however long the wait."""

from __future__ import annotations

import time

import pytest
import redis

from shared.protos.intervene.v1 import queue_pb2
from shared.queues import Delivery, Worker, WorkQueue, dead_letters
from tests.shared.queues.helpers import fast_settings, queue, request


@pytest.mark.parametrize("per_batch", [False, True])
def test_a_full_output_blocks_the_worker_without_failing_entries(redis_url: str, per_batch: bool) -> None:
    work = queue(redis_url, max_deliveries=2)  # reclaim after 50 ms: a failed delivery would dead-letter fast
    output = WorkQueue(
        redis.Redis.from_url(redis_url), "test.out", queue_pb2.RolloutRequested, settings=fast_settings(max_length=3)
    )
    output.ensure_group("down")
    output.produce_many([request(100 + i) for i in range(3)])  # full

    def one(delivery: Delivery[queue_pb2.RolloutRequested]) -> None:
        output.produce(delivery.message)

    def batch(deliveries: list[Delivery[queue_pb2.RolloutRequested]]) -> None:
        output.produce_many([delivery.message for delivery in deliveries])

    worker = Worker(work, "workers", "w1", batch_handler=batch) if per_batch else Worker(work, "workers", "w1", one)
    work.produce_many([request(i) for i in range(3)])
    worker.start()
    try:
        time.sleep(1.0)  # twenty claim-idle periods
        assert dead_letters(work.client, work.stream) == [] and worker.failed == 0
        assert work.client.xlen(work.stream) == 3, "the blocked entries stay pending, in hand"
        received: list[str] = []
        deadline = time.monotonic() + 20
        while len(received) < 6:
            assert time.monotonic() < deadline, received
            taken = output.read("down", "d", block_ms=50)
            output.ack("down", [d.entry_id for d in taken])
            received += [d.message.rollout_id for d in taken]
        while work.client.xlen(work.stream):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        worker.stop(timeout_s=5)
    assert received == ["r100", "r101", "r102", "r0", "r1", "r2"], "each entry's effect once, in order"
    assert worker.succeeded == 3 and worker.failed == 0 and dead_letters(work.client, work.stream) == []
