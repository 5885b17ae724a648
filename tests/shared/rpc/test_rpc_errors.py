"""Servicer exceptions become the right gRPC status, over real gRPC on loopback; size limits."""

from __future__ import annotations

import grpc
import pytest

from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect
from shared.rpc.errors import INTERNAL_MESSAGE, ServiceError
from shared.rpc.logs import describe_exception
from tests.shared.rpc.rpc_probe import PROMPT_LIMIT, TOKEN

EXPECTED = {
    "invalid": (grpc.StatusCode.INVALID_ARGUMENT, "id: must be 64 hex characters"),
    "not_found": (grpc.StatusCode.NOT_FOUND, "pair 'not_found' does not exist"),
    "exists": (grpc.StatusCode.ALREADY_EXISTS, "pair exists"),
    "unavailable": (grpc.StatusCode.UNAVAILABLE, "generation is overloaded"),
    "deadline": (grpc.StatusCode.DEADLINE_EXCEEDED, "judge took too long"),
    "unauthenticated": (grpc.StatusCode.UNAUTHENTICATED, "token expired"),
    "denied": (grpc.StatusCode.PERMISSION_DENIED, "not yours"),
    "precondition": (grpc.StatusCode.FAILED_PRECONDITION, "adapter not loaded"),
    "exhausted": (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full"),
    "redis": (
        grpc.StatusCode.UNAVAILABLE,
        "redis unreachable: Error 111 connecting to 127.0.0.1:1. Connection refused.",
    ),
    "redis_timeout": (grpc.StatusCode.UNAVAILABLE, "redis unreachable: Timeout reading from socket"),
    "boom": (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_unary_exception_maps_to_status(stub: pairstore_pb2_grpc.PairStoreServiceStub, kind: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetPair(pairstore_pb2.GetPairRequest(id=kind), timeout=10)
    assert (raised.value.code(), raised.value.details()) == EXPECTED[kind]


def test_unexpected_error_logs_traceback_but_not_its_text(
    stub: pairstore_pb2_grpc.PairStoreServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetPair(pairstore_pb2.GetPairRequest(id="boom"), timeout=10)
    assert "SECRET" not in raised.value.details()
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "intervene.rpc")
    assert "GetPair" in logged and "rpc_probe.py" in logged and "RuntimeError: <19 chars>" in logged
    assert "SECRET" not in logged


def test_unexpected_error_text_is_logged_with_log_text(serve, caplog: pytest.LogCaptureFixture) -> None:
    running = serve(log_text=True)
    stub = pairstore_pb2_grpc.PairStoreServiceStub(connect(running.address, token=TOKEN))
    with pytest.raises(grpc.RpcError):
        stub.GetPair(pairstore_pb2.GetPairRequest(id="boom"), timeout=10)
    assert any("RuntimeError: SECRET REQUEST TEXT" in record.getMessage() for record in caplog.records)


def test_describe_exception_follows_causes() -> None:
    secret = "".join(["s", "3", "cr3t"])  # built at run time: the traceback shows source lines
    try:
        try:
            raise KeyError(secret)
        except KeyError as inner:
            raise ValueError(secret * 2) from inner
    except ValueError as outer:
        text = describe_exception(outer, log_text=False)
        shown = describe_exception(outer, log_text=True)
    assert text.index("KeyError: <8 chars>") < text.index("ValueError: <12 chars>")
    assert secret not in text
    assert f"ValueError: {secret * 2}" in shown


@pytest.mark.parametrize(("kind", "code"), [("redis", grpc.StatusCode.UNAVAILABLE), ("boom", grpc.StatusCode.INTERNAL)])
def test_stream_error_after_responses_maps_to_status(
    stub: pairstore_pb2_grpc.PairStoreServiceStub, kind: str, code: grpc.StatusCode
) -> None:
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        for response in stub.ExportPairs(
            pairstore_pb2.ExportPairsRequest(filter=pairstore_pb2.PairFilter(dataset=kind)), timeout=10
        ):
            received.append(response.pair.id)
    assert received == ["p0", "p1"]
    assert raised.value.code() == code


def test_stream_without_error_ends_ok(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> None:
    ids = [response.pair.id for response in stub.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=10)]
    assert ids == ["p0", "p1"]


def test_check_text_field_names_field_and_limit(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> None:
    ok = common_pb2.Pair(id="a", prompt=common_pb2.Prompt(text="x" * PROMPT_LIMIT))
    long = common_pb2.Pair(id="b", prompt=common_pb2.Prompt(text="x" * (PROMPT_LIMIT + 1)))
    assert stub.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[ok]), timeout=10).created == 1
    with pytest.raises(grpc.RpcError) as raised:
        stub.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[ok, long]), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        f"pairs[1].prompt.text: is {PROMPT_LIMIT + 1} characters; the limit is {PROMPT_LIMIT} characters"
    )


def test_oversized_message_is_resource_exhausted(serve) -> None:
    running = serve(max_message_bytes=2048)
    # The client may send more than the server accepts, so the refusal comes from the server.
    channel = connect(running.address, token=TOKEN, max_message_bytes=1 << 20)
    stub = pairstore_pb2_grpc.PairStoreServiceStub(channel)
    small = common_pb2.Pair(id="a", prompt=common_pb2.Prompt(text="x" * 50))
    big = common_pb2.Pair(id="b", prompt=common_pb2.Prompt(text="x" * 4096))
    assert stub.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[small]), timeout=10).created == 1
    with pytest.raises(grpc.RpcError) as raised:
        stub.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[big]), timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()


def test_invalid_argument_prefixes_the_field() -> None:
    error = ServiceError.invalid_argument("sampling.temperature", "must be in [0, 2]; got 3")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "sampling.temperature: must be in [0, 2]; got 3"
