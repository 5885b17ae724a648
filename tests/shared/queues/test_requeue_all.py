"""Requeueing "all" dead letters moves those present when it starts, even while a consumer keeps killing them."""

from __future__ import annotations

import threading

from shared.queues import dead_letters, requeue_dead
from tests.shared.queues.helpers import queue, request


def test_requeue_all_moves_each_letter_once_while_they_die_again(redis_url: str) -> None:
    work = queue(redis_url, max_deliveries=1, block_ms=5)
    letters = 1200  # more than one chunk of 500, so the consumer has time to kill requeued ones mid-call
    work.produce_many([request(i) for i in range(letters)])

    def poison(delivery) -> None:
        raise ValueError("still poison")

    while work.consume("g", "c", poison, block_ms=0).handled:
        pass
    assert len(dead_letters(work.client, work.stream, count=5000)) == letters

    stop = threading.Event()

    def keep_killing() -> None:
        consumer = queue(redis_url, max_deliveries=1, block_ms=5)
        while not stop.is_set():
            consumer.consume("g", "c", poison)

    killer = threading.Thread(target=keep_killing)
    killer.start()
    try:
        moved = requeue_dead(work.client, work.stream, "all", work.settings)
    finally:
        stop.set()
        killer.join()
    assert moved == letters
