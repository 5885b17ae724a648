"""Server construction: spec validation, port binding, and the client's wait on an absent server."""

from __future__ import annotations

import grpc
import pytest

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect, wait_for_serving
from tests.shared.rpc.rpc_probe import SERVICE, ProbeServicer, make_spec
from tools.redis_process import free_port


def test_read_scope_method_must_belong_to_a_served_service() -> None:
    with pytest.raises(ValueError, match="read_scope_methods"):
        make_spec(ProbeServicer(), read_scope_methods={"/intervene.v1.JudgeService/JudgeTrace"})
    with pytest.raises(ValueError, match="read_scope_methods"):
        make_spec(ProbeServicer(), read_scope_methods={f"{SERVICE}.ListPairs"})


def test_port_zero_binds_a_free_port_and_a_taken_port_is_an_error(serve) -> None:
    first = serve()
    assert first.port > 0
    with pytest.raises(RuntimeError, match="INTERVENE_PORT"):
        serve(port=first.port)


def test_metrics_port_in_use_is_an_error_that_stops_the_server(serve) -> None:
    first = serve(metrics_port=free_port())
    with pytest.raises(RuntimeError, match="INTERVENE_METRICS_PORT"):
        serve(metrics_port=first.metrics_port)


def test_fixed_port(serve) -> None:
    port = free_port()
    assert serve(port=port).port == port


def test_wait_for_serving_names_the_error_when_nothing_listens() -> None:
    channel = connect(f"127.0.0.1:{free_port()}")
    with pytest.raises(TimeoutError, match="UNAVAILABLE"):
        wait_for_serving(channel, timeout=0.5)
    channel.close()


def test_stop_is_idempotent(serve) -> None:
    running = serve()
    running.stop(grace=0)
    running.stop()
    running.drain()
    assert running.wait_for_termination(timeout=5)
    with pytest.raises(grpc.RpcError):
        pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address)).Stats(pairstore_pb2.StatsRequest(), timeout=5)
