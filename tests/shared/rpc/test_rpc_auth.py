"""Bearer-token auth: missing, wrong and right tokens, the read scope, token files, and auth disabled."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.auth import bearer_token
from shared.rpc.client import connect
from tests.shared.rpc.rpc_probe import LIST_PAIRS, READ_TOKEN, TOKEN


def _stub(address: str, token: str | None) -> pairstore_pb2_grpc.PairStoreServiceStub:
    return pairstore_pb2_grpc.PairStoreServiceStub(connect(address, token=token))


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _get(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> grpc.StatusCode:
    return _code(lambda: stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10))


def _list(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> grpc.StatusCode:
    return _code(lambda: stub.ListPairs(pairstore_pb2.ListPairsRequest(), timeout=10))


def _export(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> grpc.StatusCode:
    return _code(lambda: list(stub.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=10)))


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("wrong", grpc.StatusCode.UNAUTHENTICATED),
        (TOKEN + "x", grpc.StatusCode.UNAUTHENTICATED),
        (TOKEN, grpc.StatusCode.OK),
        (READ_TOKEN, grpc.StatusCode.OK),
    ],
)
def test_call_scope(server, token: str | None, expected: grpc.StatusCode) -> None:
    stub = _stub(server.address, token)
    assert _get(stub) == expected
    assert _export(stub) == expected


def test_missing_token_message_says_what_to_send(server) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _stub(server.address, None).GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    assert "authorization: Bearer" in raised.value.details()


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED),
        ("wrong", grpc.StatusCode.UNAUTHENTICATED),
        (TOKEN, grpc.StatusCode.PERMISSION_DENIED),
        (READ_TOKEN, grpc.StatusCode.OK),
    ],
)
def test_read_scope(server, token: str | None, expected: grpc.StatusCode) -> None:
    assert _list(_stub(server.address, token)) == expected


def test_read_scope_refused_when_no_read_token_is_configured(serve) -> None:
    running = serve(read_token=None)
    stub = _stub(running.address, TOKEN)
    assert _list(stub) == grpc.StatusCode.PERMISSION_DENIED
    assert _get(stub) == grpc.StatusCode.OK
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListPairs(pairstore_pb2.ListPairsRequest(), timeout=10)
    assert LIST_PAIRS in raised.value.details()
    assert "INTERVENE_READ_TOKEN" in raised.value.details()


def test_tokens_from_mounted_files(serve, tmp_path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    (tmp_path / "read").write_text("file-read-token\n")
    running = serve(
        auth_token=None, read_token=None, auth_token_file=tmp_path / "token", read_token_file=tmp_path / "read"
    )
    assert _get(_stub(running.address, "file-token")) == grpc.StatusCode.OK
    assert _list(_stub(running.address, "file-read-token")) == grpc.StatusCode.OK
    assert _get(_stub(running.address, TOKEN)) == grpc.StatusCode.UNAUTHENTICATED


def test_auth_disabled_checks_nothing_and_warns(serve, caplog: pytest.LogCaptureFixture) -> None:
    running = serve(auth_disabled=True, auth_token=None, read_token=None)
    stub = _stub(running.address, None)
    assert _get(stub) == grpc.StatusCode.OK
    assert _list(stub) == grpc.StatusCode.OK
    assert any("DISABLED" in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


def test_health_needs_no_token(server) -> None:
    health = health_pb2_grpc.HealthStub(connect(server.address))
    response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("x-other", "1"), ("authorization", "Basic abc")), None),
        ((("authorization", "Bearer "),), None),
        ((), None),
        (None, None),
    ],
)
def test_bearer_token_parsing(metadata, expected: str | None) -> None:
    assert bearer_token(metadata) == expected
