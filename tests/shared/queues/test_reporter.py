"""The lag reporter publishes each group's lag and pending entries, and the stream's length and dead letters."""

from __future__ import annotations

import redis

from shared.config.base import QueueSettings
from shared.protos.intervene.v1 import queue_pb2
from shared.queues import PAIR_CREATED, WorkQueue
from shared.queues.reporter import LagReporter
from tests.shared.pairs.factories import make_pair


class Recorded:
    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], tuple[float, float]] = {}
        self.streams: dict[str, tuple[float, float]] = {}

    def set_queue_lag(self, stream: str, group: str, lag: float, pending: float = 0) -> None:
        self.groups[stream, group] = (lag, pending)

    def set_stream(self, stream: str, length: float, dead_letters: float) -> None:
        self.streams[stream] = (length, dead_letters)


def test_reports_lag_pending_length_and_dead_letters(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = WorkQueue(client, PAIR_CREATED, settings=QueueSettings(block_ms=10, batch_size=3))
    queue.produce_many([queue_pb2.PairCreated(pair=make_pair(i)) for i in range(5)])
    queue.ensure_group("pairstore")
    [first, *_] = queue.read("pairstore", "c1")
    queue.dead_letter("pairstore", [(first.entry_id, 1, "refused")])
    recorded = Recorded()
    LagReporter(client, [PAIR_CREATED], recorded).report_once()
    # 3 read (one of them dead-lettered, so acked and deleted), 2 never delivered.
    assert recorded.groups == {(PAIR_CREATED, "pairstore"): (2, 2)}
    assert recorded.streams == {PAIR_CREATED: (4, 1)}
