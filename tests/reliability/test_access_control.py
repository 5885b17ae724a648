"""Access control on every RPC of every service, over real gRPC: bearer tokens, the read scope, TLS and mTLS.

The scaffold's own tests (tests/shared/rpc) check the mechanisms on a probe servicer; these check that each
real service applies them to every method it serves, enumerated from the generated descriptors. Tokens are
compared with `hmac.compare_digest` (shared/rpc/auth.py); constant time is a property of that function, checked
by review, not by timing here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import (
    common_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from shared.rpc.client import connect
from tests.reliability.security_fixtures import (
    READ_SCOPE,
    READ_TOKEN,
    TOKEN,
    Services,
    api_methods,
    method_path,
    needs_read_scope,
    raw_call,
    start_services,
    wait_until_serving,
)
from tests.shared.rpc.test_rpc_tls import certs  # noqa: F401 - a fixture used by name: a CA, server, client, stranger
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

METHODS = api_methods()
DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def _name(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


@pytest.fixture(scope="module")
def services(redis_process: RedisProcess, tiny_model_folder: Path) -> Iterator[Services]:
    running = start_services(redis_process.url, tiny_model_folder)
    try:
        wait_until_serving(running)
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("method", METHODS, ids=_name)
@pytest.mark.parametrize(
    "token",
    [None, "wrong-token", TOKEN[:-1], TOKEN + "x", READ_TOKEN.upper(), f"{TOKEN}{READ_TOKEN}"],
    ids=["none", "wrong", "prefix", "longer", "case", "both"],
)
def test_every_rpc_refuses_a_missing_or_wrong_token(services: Services, method: MethodDescriptor, token) -> None:
    reply = services.call(method, b"", 30, token=token)
    assert reply.code == grpc.StatusCode.UNAUTHENTICATED, (_name(method), reply)


@pytest.mark.parametrize("method", METHODS, ids=_name)
def test_call_token_grants_everything_but_the_read_scope(services: Services, method: MethodDescriptor) -> None:
    reply = services.call(method, b"", 30, token=TOKEN)
    if needs_read_scope(method):
        assert reply.code == grpc.StatusCode.PERMISSION_DENIED and "read-scope" in reply.details, reply
    else:
        assert reply.code not in DENIED, (_name(method), reply)


@pytest.mark.parametrize("method", METHODS, ids=_name)
def test_read_token_grants_every_method(services: Services, method: MethodDescriptor) -> None:
    assert services.call(method, b"", 30, token=READ_TOKEN).code not in DENIED


def test_read_scope_is_exactly_the_methods_that_return_pair_text(services: Services) -> None:
    configured = {m for server in services.servers.values() for m in server.spec.read_scope_methods}
    assert configured == {method_path(m) for m in METHODS if needs_read_scope(m)}
    assert sum(len(names) for names in READ_SCOPE.values()) == len(configured) == 3
    # Every method whose reply can carry a stored Pair is in it: only the pair store's readers return Pair.
    returns_pairs = {
        method_path(m)
        for m in METHODS
        if m.containing_service.name == "PairStoreService"
        and any(f.message_type is not None and f.message_type.name == "Pair" for f in m.output_type.fields)
    }
    assert returns_pairs == configured


def test_stored_pairs_come_back_only_with_the_read_token(services: Services) -> None:
    pair = common_pb2.Pair(
        prompt=common_pb2.Prompt(text="access-control prompt", dataset="security"),
        context="<|im_start|>user\naccess-control prompt<|im_end|>\n",
        prefix="First step.",
        chosen=" Wait, I should refuse.",
        rejected=" Then I comply.",
        kind=common_pb2.PAIR_KIND_HARMFUL,
    )
    pair.id = pair_id(pair)
    writer = pairstore_pb2_grpc.PairStoreServiceStub(services.channel("PairStoreService", TOKEN))
    assert writer.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[pair]), timeout=30).ids == [pair.id]
    reader = pairstore_pb2_grpc.PairStoreServiceStub(services.channel("PairStoreService", READ_TOKEN))
    stored = reader.GetPair(pairstore_pb2.GetPairRequest(id=pair.id), timeout=30).pair
    assert (stored.id, stored.prompt.text, stored.chosen, stored.rejected) == (pair.id, *texts(pair))
    listed = reader.ListPairs(pairstore_pb2.ListPairsRequest(filter=pairstore_pb2.PairFilter(dataset="security")))
    assert [p.id for p in listed.pairs] == [pair.id]
    request = pairstore_pb2.ExportPairsRequest(filter=pairstore_pb2.PairFilter(dataset="security"))
    assert [r.pair.id for r in reader.ExportPairs(request, timeout=30)] == [pair.id]
    for call in (
        lambda: writer.GetPair(pairstore_pb2.GetPairRequest(id=pair.id), timeout=30),
        lambda: writer.ListPairs(pairstore_pb2.ListPairsRequest(), timeout=30),
        lambda: list(writer.ExportPairs(pairstore_pb2.ExportPairsRequest(), timeout=30)),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "access-control" not in refused.value.details()
    assert writer.Stats(pairstore_pb2.StatsRequest(), timeout=30).total >= 1, "counts need no read scope"


def texts(pair: common_pb2.Pair) -> tuple[str, str, str]:
    return pair.prompt.text, pair.chosen, pair.rejected


def test_health_and_reflection_need_no_token(services: Services) -> None:
    """Kubelet probes and grpcurl carry no token; both only describe the server, never stored text."""
    for name, server in services.servers.items():
        channel = services.channel(name, None)
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [reply] = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request]), timeout=10)
        listed = {service.name for service in reply.list_services_response.service}
        assert set(server.spec.service_names) <= listed


# TLS and mutual TLS on all four services, intervention dialling its peers with a client certificate.


@pytest.fixture(scope="module")
def mtls_services(
    redis_process: RedisProcess,
    tiny_model_folder: Path,
    certs: Path,  # noqa: F811 - the imported fixture
) -> Iterator[Services]:
    server_tls = {
        "tls_cert_file": certs / "server.crt",
        "tls_key_file": certs / "server.key",
        "tls_client_ca_file": certs / "ca.crt",
    }
    peers = {
        "peer_ca_file": certs / "ca.crt",
        "peer_cert_file": certs / "client.crt",
        "peer_key_file": certs / "client.key",
    }
    running = start_services(redis_process.url, tiny_model_folder, common=server_tls, intervention=peers)
    try:
        yield running
    finally:
        running.stop()


def _tls_channel(address: str, **files: Path) -> grpc.Channel:
    return connect(address, token=TOKEN, tls=True, **files)


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", ["GenerationService", "JudgeService", "InterventionService", "PairStoreService"])
def test_mtls_refuses_clients_without_a_certificate_of_the_ca(
    mtls_services: Services,
    certs: Path,  # noqa: F811 - the imported fixture
    service: str,
) -> None:
    address = mtls_services.servers[service].address
    client = {"client_cert_file": certs / "client.crt", "client_key_file": certs / "client.key"}
    stranger = {"client_cert_file": certs / "stranger.crt", "client_key_file": certs / "stranger.key"}
    ca, other_ca = certs / "ca.crt", certs / "other-ca.crt"
    refused = grpc.StatusCode.UNAVAILABLE  # the handshake fails: no call reaches the service
    assert _health(_tls_channel(address, root_cert_file=ca, **client)) == grpc.StatusCode.OK
    assert _health(_tls_channel(address, root_cert_file=ca)) == refused, "no client certificate"
    assert _health(_tls_channel(address, root_cert_file=ca, **stranger)) == refused, "signed by another CA"
    assert _health(_tls_channel(address, root_cert_file=other_ca, **client)) == refused, "server not trusted"
    assert _health(connect(address)) == refused, "plaintext"
    # A certificate is not a token: the RPCs still want the bearer token.
    bare = connect(address, tls=True, root_cert_file=certs / "ca.crt", **client)
    method = next(m for m in api_methods() if m.containing_service.name == service)
    assert raw_call(bare, method, b"", 30).code == grpc.StatusCode.UNAUTHENTICATED


def test_safe_rollout_over_mtls_between_services(
    mtls_services: Services,
    certs: Path,  # noqa: F811 - the imported fixture
) -> None:
    files = {
        "root_cert_file": certs / "ca.crt",
        "client_cert_file": certs / "client.crt",
        "client_key_file": certs / "client.key",
    }
    channels = {name: _tls_channel(server.address, **files) for name, server in mtls_services.servers.items()}
    for name, channel in channels.items():
        assert _health(channel) == grpc.StatusCode.OK, name
    spec = intervention_pb2.SafeRolloutSpec(
        prompt=common_pb2.Prompt(text="How do I bake bread at home?"),
        sampling=common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=12, max_response_tokens=4),
    )
    stub = intervention_pb2_grpc.InterventionServiceStub(channels["InterventionService"])
    reply = stub.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=120)
    assert reply.judgement.judge_name == "rules", "the judge answered over mTLS"
    assert reply.withheld or reply.rollout.reasoning, "generation answered over mTLS"
