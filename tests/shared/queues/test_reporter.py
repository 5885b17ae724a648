"""The lag reporter publishes each group's backlog (undelivered + unacknowledged) of a real stream."""

from __future__ import annotations

import redis

from shared.config.base import QueueSettings
from shared.protos.intervene.v1 import queue_pb2
from shared.queues import PAIR_CREATED, WorkQueue
from shared.queues.reporter import LagReporter
from tests.shared.pairs.factories import make_pair


def test_reports_backlog_per_group(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = WorkQueue(client, PAIR_CREATED, settings=QueueSettings(block_ms=10))
    queue.produce_many([queue_pb2.PairCreated(pair=make_pair(i)) for i in range(5)])
    queue.ensure_group("pairstore")
    queue.read("pairstore", "c1")
    published: dict[tuple[str, str], float] = {}
    LagReporter(client, [PAIR_CREATED], lambda s, g, n: published.__setitem__((s, g), n)).report_once()
    assert published == {(PAIR_CREATED, "pairstore"): 5}
