"""The dead-letter stream `<stream>.dead`: entries that could not be processed, kept with why.

An entry lands there when it was delivered `max_deliveries` times without success (a handler kept
failing on it, or consumers kept dying on it) or when its body is not a message of the stream's type.
Each dead letter keeps the original body and type, the source stream, entry id and consumer group, the
delivery count and the last error. The dead-letter stream is not capped: refusing a dead letter would
leave a poison entry blocking its stream, and dead letters are few.

`requeue_dead` moves dead letters back onto their stream (as new entries, so with a fresh delivery
count) once the cause is fixed; every consumer group of the stream sees them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis

from shared.config.base import QueueSettings
from shared.queues import scripts
from shared.queues.errors import BackPressureError
from shared.queues.names import dead_letter_stream, errors_key

# Entries moved per script call: bounds how long one call holds the server.
CHUNK = 500


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a dead-letter stream."""

    dead_id: str
    stream: str
    entry_id: str
    group: str
    deliveries: int
    error: str
    type: str
    body: bytes


def move_to_dead_letters(client: redis.Redis, stream: str, group: str, entries: Sequence[tuple[str, int, str]]) -> int:
    """Moves (entry id, deliveries, error) entries still pending in `group` to `<stream>.dead`; returns how many."""
    moved = 0
    for start in range(0, len(entries), CHUNK):
        args: list[str | int] = [group]
        for entry_id, deliveries, error in entries[start : start + CHUNK]:
            args += [entry_id, deliveries, error]
        moved += client.eval(scripts.DEAD_LETTER, 3, stream, dead_letter_stream(stream), errors_key(stream), *args)
    return moved


def dead_letters(client: redis.Redis, stream: str, count: int = 100) -> list[DeadLetter]:
    """The oldest `count` dead letters of `stream`."""
    return [_dead_letter(dead_id, fields) for dead_id, fields in client.xrange(dead_letter_stream(stream), count=count)]


def requeue_dead(
    client: redis.Redis,
    stream: str,
    ids: Sequence[str] | Literal["all"] = "all",
    settings: QueueSettings | None = None,
) -> int:
    """Moves dead letters (by dead-letter entry id, or all) back onto `stream`; returns how many moved.

    "all" means the letters there when the call starts: a letter that is still poison can die again while
    later chunks move, and must not be moved again in the same call (that would cycle for as long as its
    consumer keeps up). Raises BackPressureError when they would push the stream past its cap; the letters
    moved by earlier chunks stay moved.
    """
    cap = (settings or QueueSettings()).max_length
    dead = dead_letter_stream(stream)
    moved = 0
    if ids == "all":
        newest = client.xrevrange(dead, count=1)
        if not newest:
            return 0
        # Page from the start each time: moved letters are deleted, so the next page is the next letters.
        while page := [dead_id for dead_id, _ in client.xrange(dead, max=newest[0][0], count=CHUNK)]:
            moved += _requeue_chunk(client, dead, stream, cap, page)
        return moved
    id_list = list(ids)
    for start in range(0, len(id_list), CHUNK):
        moved += _requeue_chunk(client, dead, stream, cap, id_list[start : start + CHUNK])
    return moved


def _requeue_chunk(client: redis.Redis, dead: str, stream: str, cap: int, ids: Sequence[str | bytes]) -> int:
    result = client.eval(scripts.REQUEUE, 2, dead, stream, cap, *ids)
    if isinstance(result, int):
        raise BackPressureError(stream, result, cap, len(ids))
    return int(result[0])


def _dead_letter(dead_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    return DeadLetter(
        dead_id=dead_id.decode(),
        stream=text(b"stream"),
        entry_id=text(b"id"),
        group=text(b"group"),
        deliveries=int(fields.get(b"deliveries", b"0")),
        error=text(b"error"),
        type=text(b"type"),
        body=fields.get(b"body", b""),
    )
