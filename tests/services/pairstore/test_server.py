"""The pair store over real gRPC on loopback and a real redis-server: RPCs, status codes, auth, health."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.pairstore.server import build_spec
from shared.config.base import QueueSettings
from shared.config.pairstore import PairStoreSettings
from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc, queue_pb2
from shared.queues import PAIR_CREATED, WorkQueue, dead_letters
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.shared.pairs.factories import make_pair
from tools.redis_process import RedisProcess

TOKEN, READ_TOKEN = "call-token", "read-token"


def serve(redis_url: str, **overrides) -> RunningServer:
    settings = PairStoreSettings(
        port=0,
        redis_url=redis_url,
        auth_token=TOKEN,
        read_token=READ_TOKEN,
        dependency_check_seconds=0.1,
        **overrides,
    )
    return start_server(build_spec(settings), settings)


@pytest.fixture
def server(redis_url: str) -> Iterator[RunningServer]:
    running = serve(redis_url, max_message_bytes=64 * 1024, max_pairs_per_put=50)
    yield running
    running.stop(grace=None)


def stub(server: RunningServer, token: str | None = TOKEN) -> pairstore_pb2_grpc.PairStoreServiceStub:
    return pairstore_pb2_grpc.PairStoreServiceStub(connect(server.address, token=token))


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


def test_put_get_list_export_stats(server: RunningServer) -> None:
    writer, reader = stub(server), stub(server, READ_TOKEN)
    put = writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(i) for i in range(5)]))
    again = writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(0)]))
    assert (put.created, again.created, again.existing) == (5, 0, 1)
    assert reader.GetPair(pairstore_pb2.GetPairRequest(id=put.ids[2])).pair.prompt.id == "p2"
    first = reader.ListPairs(pairstore_pb2.ListPairsRequest(page_size=3))
    second = reader.ListPairs(pairstore_pb2.ListPairsRequest(page_size=3, page_token=first.next_page_token))
    assert [p.prompt.id for p in [*first.pairs, *second.pairs]] == [f"p{i}" for i in range(5)]
    assert second.next_page_token == ""
    shards = [
        {reply.pair.id for reply in reader.ExportPairs(pairstore_pb2.ExportPairsRequest(shard=s, num_shards=2))}
        for s in range(2)
    ]
    assert shards[0] | shards[1] == set(put.ids) and not shards[0] & shards[1]
    stats = writer.Stats(pairstore_pb2.StatsRequest())
    assert (stats.total, dict(stats.by_dataset), stats.snapshot_id) == (5, {"unit": 5}, "5")


def test_status_codes_name_the_field(server: RunningServer) -> None:
    writer, reader = stub(server), stub(server, READ_TOKEN)
    code, details = status_of(lambda: reader.GetPair(pairstore_pb2.GetPairRequest(id="f" * 64)))
    assert code == grpc.StatusCode.NOT_FOUND
    empty = make_pair(1)
    empty.chosen = ""
    code, details = status_of(lambda: writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(0), empty])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("pairs[1].chosen")
    code, details = status_of(
        lambda: writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(i) for i in range(51)]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit is 50" in details
    code, details = status_of(lambda: reader.ListPairs(pairstore_pb2.ListPairsRequest(page_size=5000)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in details
    code, details = status_of(lambda: reader.ListPairs(pairstore_pb2.ListPairsRequest(page_token="garbage!")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in details
    code, _ = status_of(lambda: list(reader.ExportPairs(pairstore_pb2.ExportPairsRequest(shard=2, num_shards=2))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    huge = make_pair(2)
    huge.rejected = "x" * 100_000
    code, _ = status_of(lambda: writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[huge])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    out_of_range = pairstore_pb2.PairFilter()
    out_of_range.created_after.seconds = 2**62  # far past year 9999: a Timestamp that cannot be converted
    code, details = status_of(lambda: writer.Stats(pairstore_pb2.StatsRequest(filter=out_of_range)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("filter.created_after")
    assert writer.Stats(pairstore_pb2.StatsRequest()).total == 0, "a refused request stores nothing"


def test_tokens_and_read_scope(server: RunningServer) -> None:
    code, _ = status_of(lambda: stub(server, None).Stats(pairstore_pb2.StatsRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = status_of(lambda: stub(server, "wrong").Stats(pairstore_pb2.StatsRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    (identifier,) = stub(server).PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(1)])).ids
    code, _ = status_of(lambda: stub(server).GetPair(pairstore_pb2.GetPairRequest(id=identifier)))
    assert code == grpc.StatusCode.PERMISSION_DENIED, "pair text needs the read scope"
    assert stub(server, READ_TOKEN).GetPair(pairstore_pb2.GetPairRequest(id=identifier)).pair.id == identifier


def wait_health(server: RunningServer, wanted: int, timeout_s: float = 10) -> None:
    health = health_pb2_grpc.HealthStub(connect(server.address))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if health.Check(health_pb2.HealthCheckRequest()).status == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"health never became {wanted}")


def test_redis_down_is_unavailable_and_not_serving_then_recovers(own_redis: RedisProcess) -> None:
    running = serve(own_redis.url)
    try:
        wait_health(running, health_pb2.HealthCheckResponse.SERVING)
        writer = stub(running)
        assert writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(1)])).created == 1
        own_redis.kill()
        wait_health(running, health_pb2.HealthCheckResponse.NOT_SERVING)
        code, details = status_of(lambda: writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(2)])))
        assert code == grpc.StatusCode.UNAVAILABLE and "redis" in details
        own_redis.start()
        wait_health(running, health_pb2.HealthCheckResponse.SERVING)
        assert writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(2)])).created == 1
        assert writer.Stats(pairstore_pb2.StatsRequest()).total == 2, "the pair acknowledged before the crash is kept"
    finally:
        running.stop(grace=None)


def test_queued_pairs_are_stored_once_and_invalid_ones_dead_lettered(redis_url: str) -> None:
    settings = QueueSettings(block_ms=100, max_deliveries=2, claim_idle_ms=200)
    running = start_server(
        build_spec(PairStoreSettings(port=0, redis_url=redis_url, auth_token=TOKEN), settings),
        PairStoreSettings(port=0, redis_url=redis_url, auth_token=TOKEN),
    )
    try:
        queue = WorkQueue(redis.Redis.from_url(redis_url), PAIR_CREATED, settings=settings)
        bad = make_pair(99)
        bad.chosen = ""
        queue.produce_many([queue_pb2.PairCreated(pair=make_pair(i % 4)) for i in range(8)])
        queue.produce(queue_pb2.PairCreated(pair=bad))
        writer = stub(running)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not dead_letters(redis.Redis.from_url(redis_url), PAIR_CREATED):
            time.sleep(0.1)
        assert writer.Stats(pairstore_pb2.StatsRequest()).total == 4, "duplicates in the queue are stored once"
        (dead,) = dead_letters(redis.Redis.from_url(redis_url), PAIR_CREATED)
        assert "pair.chosen" in dead.error
    finally:
        running.stop(grace=None)
