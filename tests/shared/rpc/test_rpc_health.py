"""Health follows the dependency checks (a real redis-server killed and restarted) and drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.rpc.client import connect, wait_for_serving
from shared.rpc.health import LIVENESS, NOT_SERVING, SERVING, redis_check
from tests.shared.rpc.rpc_probe import SERVICE
from tools.redis_process import RedisProcess

Status = health_pb2.HealthCheckResponse


def _eventually(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s}s")
        time.sleep(0.05)


def _status(stub: health_pb2_grpc.HealthStub, service: str = "") -> int:
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_follows_redis_and_drain(serve, own_redis: RedisProcess) -> None:
    ready = threading.Event()
    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    ping = redis_check(client)
    running = serve(spec_overrides={"dependencies": {"warmup": ready.is_set, "redis": ping}})
    channel = connect(running.address)
    stub = health_pb2_grpc.HealthStub(channel)

    assert _status(stub) == Status.NOT_SERVING
    assert _status(stub, SERVICE) == Status.NOT_SERVING

    ready.set()
    wait_for_serving(channel, SERVICE, timeout=15)
    assert _status(stub) == Status.SERVING

    own_redis.kill()
    _eventually(lambda: _status(stub) == Status.NOT_SERVING, "NOT_SERVING after redis was killed")
    assert _status(stub, SERVICE) == Status.NOT_SERVING

    own_redis.start()
    wait_for_serving(channel, SERVICE, timeout=15)

    running.health.drain()
    assert _status(stub) == Status.NOT_SERVING
    # Draining is final: healthy dependencies do not bring SERVING back.
    assert running.health.check_dependencies() is True
    assert _status(stub, SERVICE) == Status.NOT_SERVING
    channel.close()


def test_liveness_stays_serving_while_redis_is_down_and_through_the_drain(serve, own_redis: RedisProcess) -> None:
    """What the chart's probes ask: readiness ("") follows a real Redis, liveness ("liveness") does not, so a Redis
    outage takes the replicas out of their Services without the kubelet restarting them."""
    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    running = serve(spec_overrides={"dependencies": {"redis": redis_check(client)}})
    channel = connect(running.address)
    stub = health_pb2_grpc.HealthStub(channel)
    wait_for_serving(channel, SERVICE, timeout=15)
    assert _status(stub, LIVENESS) == Status.SERVING

    own_redis.kill()
    _eventually(lambda: _status(stub) == Status.NOT_SERVING, "readiness NOT_SERVING after redis was killed")
    assert _status(stub, SERVICE) == Status.NOT_SERVING
    assert _status(stub, LIVENESS) == Status.SERVING

    own_redis.start()
    wait_for_serving(channel, "", timeout=15)
    running.health.drain()
    assert _status(stub) == Status.NOT_SERVING
    assert _status(stub, LIVENESS) == Status.SERVING, "a draining server is alive: in-flight calls may finish"
    channel.close()


def test_raising_check_counts_as_failing(serve) -> None:
    def broken() -> bool:
        raise OSError("no route to host")

    running = serve(spec_overrides={"dependencies": {"peer": broken}})
    assert running.health.check_dependencies() is False
    assert running.health.status() == NOT_SERVING


def test_no_dependencies_serves_at_once(server) -> None:
    wait_for_serving(connect(server.address), SERVICE, timeout=15)
    assert server.health.status() == SERVING


def test_unknown_service_name_is_not_found(server) -> None:
    stub = health_pb2_grpc.HealthStub(connect(server.address))
    with pytest.raises(grpc.RpcError) as raised:
        _status(stub, "intervene.v1.NoSuchService")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_wait_for_serving_times_out_naming_the_status(serve) -> None:
    running = serve(spec_overrides={"dependencies": {"never": lambda: False}})
    with pytest.raises(TimeoutError, match="NOT_SERVING"):
        wait_for_serving(connect(running.address), timeout=0.5)
