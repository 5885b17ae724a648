"""Fixtures every test may use: a real, durable `redis-server` on a free port. And a guard on the run's exit: a
thread left blocked by a test (say, a gRPC handler waiting on a generation that will never finish) would keep
the interpreter from exiting after the summary, silently, until CI's limit; instead, every thread's stack is
printed and the run exits non-zero."""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.public_data import PUBLIC_DATA
from tools.redis_process import RedisProcess

# No test reaches the Hugging Face Hub: loads of named sets that have no local copy fail at once, and the hub path is
# tested against local folders. The public sets' local copy is the data folder of every test that does not set one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if PUBLIC_DATA.is_dir():
    os.environ.setdefault("INTERVENE_DATA_DIR", str(PUBLIC_DATA))


EXIT_GRACE_S = 120
"""How long the interpreter may take to exit after the last test before the run is failed as hung."""


def pytest_unconfigure(config: pytest.Config) -> None:
    """If the interpreter has not exited EXIT_GRACE_S after the run, dump every thread's stack and exit 1."""
    faulthandler.dump_traceback_later(EXIT_GRACE_S, exit=True, file=sys.__stderr__)


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
