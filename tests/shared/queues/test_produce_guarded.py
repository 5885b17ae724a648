"""A guarded produce writes its entries and moves its cursor together, or does neither."""

from __future__ import annotations

import pytest

from shared.queues import BackPressureError
from tests.shared.queues.helpers import queue, request

CURSOR = "test:cursor"


def test_writes_and_moves_the_cursor_in_one_step(redis_url: str) -> None:
    work = queue(redis_url)
    ids = work.produce_guarded([request(1), request(2)], CURSOR, "at", "", "2")
    assert ids is not None and [entry for entry, _ in work.client.xrange(work.stream)] == [i.encode() for i in ids]
    assert work.client.hget(CURSOR, "at") == b"2"
    assert work.produce_guarded([request(3)], CURSOR, "at", "2", "3") is not None
    assert work.client.hget(CURSOR, "at") == b"3"


def test_a_moved_cursor_or_a_full_stream_writes_nothing(redis_url: str) -> None:
    work = queue(redis_url, max_length=3)
    work.client.hset(CURSOR, "at", "5")
    assert work.produce_guarded([request(1)], CURSOR, "at", "4", "6") is None, "someone else moved it"
    with pytest.raises(BackPressureError, match="cannot add 4 more"):
        work.produce_guarded([request(i) for i in range(4)], CURSOR, "at", "5", "9")
    assert work.client.xlen(work.stream) == 0 and work.client.hget(CURSOR, "at") == b"5"
    with pytest.raises(ValueError, match="at most 1000"):
        work.produce_guarded([request(i) for i in range(1001)], CURSOR, "at", "5", "1006")
