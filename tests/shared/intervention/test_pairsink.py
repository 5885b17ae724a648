"""The pair sink of safe rollouts over a real pair store (gRPC on loopback) and a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from services.pairstore.server import build_spec
from shared.config.pairstore import PairStoreSettings
from shared.intervention.pairsink import PairSink
from shared.pairs.ids import pair_id
from shared.pairs.store import PairRepository
from shared.protos.intervene.v1 import queue_pb2
from shared.queues import PAIR_CREATED, WorkQueue
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.shared.pairs.factories import make_pair
from tools.redis_process import free_port

TOKEN = "call-token"


@pytest.fixture
def pairstore(redis_url: str) -> Iterator[RunningServer]:
    settings = PairStoreSettings(port=0, redis_url=redis_url, auth_token=TOKEN, read_token="read", consume_queue=False)
    running = start_server(build_spec(settings), settings)
    yield running
    running.stop(grace=None)


def _queue(redis_url: str) -> WorkQueue[queue_pb2.PairCreated]:
    return WorkQueue(redis.Redis.from_url(redis_url), PAIR_CREATED)


def _queued(redis_url: str) -> list[str]:
    entries = redis.Redis.from_url(redis_url).xrange(PAIR_CREATED)
    return [queue_pb2.PairCreated.FromString(fields[b"body"]).pair.prompt.id for _, fields in entries]


def test_pairs_go_to_the_pair_store_when_it_answers(pairstore: RunningServer, redis_url: str) -> None:
    pairs = [make_pair(0), make_pair(1)]
    PairSink(_queue(redis_url), connect(pairstore.address, token=TOKEN))(pairs)
    repository = PairRepository(redis.Redis.from_url(redis_url))
    assert [repository.get(pair_id(pair)).prompt.id for pair in pairs] == ["p0", "p1"]
    assert _queued(redis_url) == []


def test_pairs_are_queued_without_a_pair_store(redis_url: str) -> None:
    PairSink(_queue(redis_url), None)([make_pair(0), make_pair(1)])
    assert _queued(redis_url) == ["p0", "p1"]


def test_pairs_are_queued_when_the_pair_store_is_down(redis_url: str) -> None:
    nobody = connect(f"127.0.0.1:{free_port()}", token=TOKEN)
    PairSink(_queue(redis_url), nobody)([make_pair(2)])
    assert _queued(redis_url) == ["p2"]
