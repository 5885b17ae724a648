"""A `dns:///` target spreads calls over every replica a name resolves to (round_robin), as behind a headless
Service, over real gRPC on loopback.

A headless Service is a DNS name with one A record per ready pod. No cluster DNS runs here, so the test answers
DNS itself: a small UDP server that gives the name two loopback addresses, 127.0.0.1 and 127.0.0.2, where two
real servers listen on the same port. The client names that DNS server in the target's authority
(`dns://127.0.0.1:PORT/name:port`, read by gRPC's c-ares resolver); everything else is the production path
of `shared.rpc.client.connect`.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import grpc
import pytest

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import KEEPALIVE_TIME_MS, channel_options, connect, wait_for_serving
from shared.rpc.server import RunningServer, start_server
from tests.shared.rpc.rpc_probe import SERVICE, TOKEN, ProbeServicer, make_settings, make_spec

NAME = "intervene-judge-headless.intervene.svc.cluster.local"
A, IN = 1, 1


class CountingServicer(ProbeServicer):
    """Counts the GetPair calls this replica answered."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self._lock = threading.Lock()

    def GetPair(self, request: pairstore_pb2.GetPairRequest, context: grpc.ServicerContext):
        with self._lock:
            self.calls += 1
        return super().GetPair(request, context)


class TinyDns:
    """Answers A queries for NAME with `addresses`; every other question gets an empty NOERROR answer."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.queries: list[tuple[str, int]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:
                return
            self.sock.sendto(self._answer(query), client)

    def _answer(self, query: bytes) -> bytes:
        (ident,) = struct.unpack("!H", query[:2])
        labels, offset = [], 12
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        qtype, _ = struct.unpack("!HH", query[offset + 1 : offset + 5])
        question = query[12 : offset + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        answers = self.addresses if (name == NAME and qtype == A) else []
        header = struct.pack("!HHHHHH", ident, 0x8580, 1, len(answers), 0, 0)  # response, authoritative
        records = b"".join(
            struct.pack("!HHHIH", 0xC00C, A, IN, 5, 4) + socket.inet_aton(address) for address in answers
        )
        return header + question + records

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def replicas() -> Iterator[tuple[list[CountingServicer], int]]:
    """Two servers on one port, at 127.0.0.1 and 127.0.0.2: the pods behind a headless Service."""
    servicers = [CountingServicer(), CountingServicer()]
    started: list[RunningServer] = []
    first = start_server(make_spec(servicers[0]), make_settings(host="127.0.0.1"))
    started.append(first)
    port = first.port
    started.append(start_server(make_spec(servicers[1]), make_settings(host="127.0.0.2", port=port)))
    yield servicers, port
    for running in started:
        running.stop(grace=None)


@pytest.fixture
def dns() -> Iterator[TinyDns]:
    server = TinyDns(["127.0.0.1", "127.0.0.2"])
    yield server
    server.close()


def test_a_dns_target_balances_calls_over_every_replica(
    replicas: tuple[list[CountingServicer], int], dns: TinyDns
) -> None:
    servicers, port = replicas
    channel = connect(f"dns://127.0.0.1:{dns.port}/{NAME}:{port}", token=TOKEN)
    wait_for_serving(channel, SERVICE, timeout=15)
    stub = pairstore_pb2_grpc.PairStoreServiceStub(channel)
    for index in range(20):
        stub.GetPair(pairstore_pb2.GetPairRequest(id=f"pair-{index}"), timeout=10, wait_for_ready=True)
    channel.close()
    assert (NAME, A) in dns.queries, "the client resolved the name through DNS"
    # round_robin takes the replicas in turn once both are connected: each answers about half of the calls.
    assert all(servicer.calls >= 5 for servicer in servicers), [s.calls for s in servicers]
    assert sum(servicer.calls for servicer in servicers) == 20


def test_without_round_robin_one_connection_takes_every_call(
    replicas: tuple[list[CountingServicer], int], dns: TinyDns
) -> None:
    """The contrast that makes the first test mean something: gRPC's default (pick_first) on the same name."""
    servicers, port = replicas
    target = f"dns://127.0.0.1:{dns.port}/{NAME}:{port}"
    options = [option for option in channel_options(target) if option[0] != "grpc.service_config"]
    channel = grpc.insecure_channel(target, options=options)
    stub = pairstore_pb2_grpc.PairStoreServiceStub(channel)
    metadata = [("authorization", f"Bearer {TOKEN}")]
    for index in range(20):
        stub.GetPair(pairstore_pb2.GetPairRequest(id=f"pair-{index}"), timeout=10, metadata=metadata)
    channel.close()
    assert sorted(servicer.calls for servicer in servicers) == [0, 20]


def test_every_channel_pings_and_only_dns_targets_get_round_robin() -> None:
    plain = dict(channel_options("judge:50052"))
    assert plain["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS and "grpc.service_config" not in plain
    balanced = dict(channel_options("dns:///judge-headless:50052"))
    assert '"round_robin"' in balanced["grpc.service_config"]
