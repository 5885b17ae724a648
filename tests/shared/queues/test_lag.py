"""Lag reporting: length, pending, lag and dead letters per stream and group, with Redis 7's lag and without."""

from __future__ import annotations

from shared.queues import ALL_STREAMS, GroupLag, StreamLag, queue_lag, stream_lag
from tests.shared.queues.helpers import queue, request


def test_lag_numbers_follow_reads_acks_and_dead_letters(redis_url: str) -> None:
    work = queue(redis_url)
    client = work.client
    assert stream_lag(client, work.stream) == StreamLag(work.stream, 0, 0, ())

    work.produce_many([request(i) for i in range(10)])
    read = work.read("g1", "a", count=4, block_ms=0)
    work.ack("g1", [read[0].entry_id, read[1].entry_id])
    assert stream_lag(client, work.stream) == StreamLag(work.stream, 8, 0, (GroupLag("g1", 1, 2, 6),))

    work.dead_letter("g1", [(read[2].entry_id, 1, "test")])
    assert stream_lag(client, work.stream) == StreamLag(work.stream, 7, 1, (GroupLag("g1", 1, 1, 6),))

    # A second group: acked entries stay until both groups are done with them.
    work.ensure_group("g2")
    report = stream_lag(client, work.stream)
    assert report.groups[1] == GroupLag("g2", 0, 0, 7)
    work.ack("g2", [d.entry_id for d in work.read("g2", "b", count=100, block_ms=0)])
    assert stream_lag(client, work.stream).length == 7
    work.ack("g1", [read[3].entry_id] + [d.entry_id for d in work.read("g1", "a", count=100, block_ms=0)])
    assert stream_lag(client, work.stream) == StreamLag(
        work.stream, 0, 1, (GroupLag("g1", 1, 0, 0), GroupLag("g2", 1, 0, 0))
    )
    assert report.groups[1].backlog == 7


def test_queue_lag_covers_every_known_stream(redis_url: str) -> None:
    queue(redis_url).produce(request(1))
    reports = queue_lag(queue(redis_url).client)
    assert [r.stream for r in reports] == list(ALL_STREAMS)
    assert [r.length for r in reports] == [1, 0, 0, 0, 0, 0, 0]
