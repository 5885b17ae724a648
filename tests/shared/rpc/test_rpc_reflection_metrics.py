"""Reflection lists the served services; the Prometheus endpoint exposes the standard gRPC metrics and queue gauges."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect
from shared.rpc.metrics import ServiceMetrics
from tests.shared.rpc.rpc_probe import SERVICE, TOKEN
from tools.redis_process import free_port


def test_reflection_lists_services_without_a_token(server) -> None:
    database = ProtoReflectionDescriptorDatabase(connect(server.address))
    services = set(database.get_services())
    assert {SERVICE, health.SERVICE_NAME} <= services
    assert database.FindFileContainingSymbol(SERVICE).name == "intervene/v1/pairstore.proto"


def test_metrics_endpoint_exports_the_standard_grpc_metrics(serve) -> None:
    metrics = ServiceMetrics()
    running = serve(spec_overrides={"metrics": metrics}, metrics_port=free_port())
    stub = pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address, token=TOKEN))
    stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.GetPair(pairstore_pb2.GetPairRequest(id="not_found"), timeout=10)
    exported = len(list(stub.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=10)))
    with pytest.raises(grpc.RpcError):
        pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address)).Stats(pairstore_pb2.StatsRequest())
    metrics.set_queue_lag("pair.created", "pairstore", 7, 2)
    metrics.set_stream("pair.created", 9, 1)

    with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10) as response:
        families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}

    def value(family: str, sample: str, **labels: str) -> float | None:
        for found in families[family].samples:
            if found.name == sample and found.labels == labels:
                return found.value
        return None

    unary = {"grpc_type": "UNARY", "grpc_service": SERVICE, "grpc_method": "GetPair"}
    stream = {"grpc_type": "SERVER_STREAM", "grpc_service": SERVICE, "grpc_method": "ExportPairs"}
    stats = {"grpc_type": "UNARY", "grpc_service": SERVICE, "grpc_method": "Stats"}
    assert value("grpc_server_started", "grpc_server_started_total", **unary) == 3
    assert value("grpc_server_handled", "grpc_server_handled_total", **unary, grpc_code="OK") == 2
    assert value("grpc_server_handled", "grpc_server_handled_total", **unary, grpc_code="NOT_FOUND") == 1
    assert value("grpc_server_handled", "grpc_server_handled_total", **stats, grpc_code="UNAUTHENTICATED") == 1
    assert value("grpc_server_handled", "grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert value("grpc_server_handling_seconds", "grpc_server_handling_seconds_count", **unary) == 3
    assert value("grpc_server_msg_received", "grpc_server_msg_received_total", **stream) == 1
    assert value("grpc_server_msg_sent", "grpc_server_msg_sent_total", **stream) == exported
    assert value("grpc_server_msg_sent", "grpc_server_msg_sent_total", **unary) == 2
    group = {"stream": "pair.created", "group": "pairstore"}
    assert value("intervene_queue_lag_entries", "intervene_queue_lag_entries", **group) == 7
    assert value("intervene_queue_pending_entries", "intervene_queue_pending_entries", **group) == 2
    assert value("intervene_queue_length_entries", "intervene_queue_length_entries", stream="pair.created") == 9
    assert value("intervene_queue_dead_letters", "intervene_queue_dead_letters", stream="pair.created") == 1
    assert not any("grpc.health" in str(s.labels) for f in families.values() for s in f.samples)
    assert not any(name.startswith("intervene_rpc") for name in families)


def test_metrics_of_two_servers_do_not_clash(serve) -> None:
    first, second = serve(), serve()
    connect_first = pairstore_pb2_grpc.PairStoreServiceStub(connect(first.address, token=TOKEN))
    connect_first.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    labels = {"grpc_type": "UNARY", "grpc_service": SERVICE, "grpc_method": "GetPair", "grpc_code": "OK"}
    assert first.metrics.registry.get_sample_value("grpc_server_handled_total", labels)
    assert second.metrics.registry.get_sample_value("grpc_server_handled_total", labels) is None
