"""Fixtures every test may use: a real, durable `redis-server` on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.redis_process import RedisProcess


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server (AOF, appendfsync always) for the whole test run."""
    server = RedisProcess(data_dir=Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_process: RedisProcess) -> Iterator[str]:
    """The session server's URL, emptied before each test that asks for it."""
    if redis_process.process is None or redis_process.process.poll() is not None:
        redis_process.start()
    redis.Redis.from_url(redis_process.url).flushall()
    yield redis_process.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, for tests that kill or restart Redis."""
    server = RedisProcess(data_dir=tmp_path / "redis").start()
    yield server
    server.stop()
