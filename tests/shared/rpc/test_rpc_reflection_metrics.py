"""Reflection lists the served services; the Prometheus endpoint exposes the RPC metrics and queue lag."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.redis_process import free_port
from shared.rpc.client import connect
from shared.rpc.metrics import ServiceMetrics
from tests.shared.rpc.rpc_probe import SERVICE, TOKEN


def test_reflection_lists_services_without_a_token(server) -> None:
    database = ProtoReflectionDescriptorDatabase(connect(server.address))
    services = set(database.get_services())
    assert {SERVICE, health.SERVICE_NAME} <= services
    assert database.FindFileContainingSymbol(SERVICE).name == "intervene/v1/pairstore.proto"


def test_metrics_endpoint(serve) -> None:
    metrics = ServiceMetrics()
    running = serve(spec_overrides={"metrics": metrics}, metrics_port=free_port())
    stub = pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address, token=TOKEN))
    stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.GetPair(pairstore_pb2.GetPairRequest(id="not_found"), timeout=10)
    list(stub.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=10))
    with pytest.raises(grpc.RpcError):
        pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address)).Stats(pairstore_pb2.StatsRequest())
    metrics.set_queue_lag("pair.created", "pairstore", 7)

    with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    get_pair = f"/{SERVICE}/GetPair"
    assert f'intervene_rpc_requests_total{{code="OK",method="{get_pair}"}} 2.0' in text
    assert f'intervene_rpc_requests_total{{code="NOT_FOUND",method="{get_pair}"}} 1.0' in text
    assert f'intervene_rpc_requests_total{{code="OK",method="/{SERVICE}/ExportPairs"}} 1.0' in text
    assert f'intervene_rpc_requests_total{{code="UNAUTHENTICATED",method="/{SERVICE}/Stats"}} 1.0' in text
    assert 'intervene_rpc_errors_total{code="NOT_FOUND"} 1.0' in text
    assert 'intervene_rpc_errors_total{code="UNAUTHENTICATED"} 1.0' in text
    assert f'intervene_rpc_latency_seconds_count{{method="{get_pair}"}} 3.0' in text
    assert f'intervene_rpc_in_flight{{method="{get_pair}"}} 0.0' in text
    assert 'intervene_queue_lag{group="pairstore",stream="pair.created"} 7.0' in text
    assert "grpc.health" not in text


def test_metrics_of_two_servers_do_not_clash(serve) -> None:
    first, second = serve(), serve()
    connect_first = pairstore_pb2_grpc.PairStoreServiceStub(connect(first.address, token=TOKEN))
    connect_first.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    method = f"/{SERVICE}/GetPair"
    assert first.metrics.registry.get_sample_value("intervene_rpc_requests_total", {"method": method, "code": "OK"})
    assert (
        second.metrics.registry.get_sample_value("intervene_rpc_requests_total", {"method": method, "code": "OK"})
        is None
    )
