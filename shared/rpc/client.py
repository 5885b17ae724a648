"""Client side of the scaffold: channels that carry the bearer token, and waiting for a server to serve.

    channel = connect("judge:50052", token=os.environ["INTERVENE_AUTH_TOKEN"])
    wait_for_serving(channel, "intervene.v1.JudgeService", timeout=30)
    stub = judge_pb2_grpc.JudgeServiceStub(channel)

The token travels in an interceptor rather than in call credentials, because gRPC only sends call
credentials over TLS and in-cluster traffic is often plaintext behind a mesh.

Load balancing: gRPC keeps one HTTP/2 connection per channel, so a ClusterIP Service (one virtual IP) pins
every call of a client to one replica. A `dns:///name:port` target naming a headless Service (`clusterIP:
None`, one DNS record per ready pod) gets the `round_robin` policy here: the channel connects to every address
and spreads calls over them. Keepalive pings on every channel find a connection to a pod that vanished
within `KEEPALIVE_TIMEOUT_MS`, and the reconnection re-resolves the name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.rpc.tls import channel_credentials
from shared.rpc.tracing import ClientTracingInterceptor

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A ping after 30 s without traffic on a connection with calls in flight; no answer in 10 s closes it. Servers
# accept pings this often (shared/rpc/server.py), so they never answer them with GOAWAY too_many_pings.
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def is_dns_target(address: str) -> bool:
    """Whether `address` is a gRPC `dns:` target (`dns:///host:port`, or `dns://resolver/host:port`)."""
    return address.startswith("dns:")


def channel_options(address: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Options of a channel to `address`: message limits, keepalive, and round_robin for a `dns:` target."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        # A long call that waits (generation) sends no data: keep pinging through it.
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if is_dns_target(address):
        options.append(("grpc.service_config", ROUND_ROBIN_CONFIG))
    return options


class _CallDetails(
    NamedTuple(
        "_CallDetails",
        [
            ("method", str),
            ("timeout", float | None),
            ("metadata", Any),
            ("credentials", Any),
            ("wait_for_ready", bool | None),
            ("compression", Any),
        ],
    ),
    grpc.ClientCallDetails,
):
    pass


class BearerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to the metadata of every call."""

    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [*(details.metadata or ()), self._entry]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Callable, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self, continuation: Callable, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return continuation(self._with_token(details), requests)


def connect(
    address: str,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    root_cert_file: Path | str | None = None,
    client_cert_file: Path | str | None = None,
    client_key_file: Path | str | None = None,
    tls: bool | None = None,
    tls_server_name: str | None = None,
) -> grpc.Channel:
    """A channel to `address` ("host:port", or "dns:///host:port" to balance over every address the name has)
    that sends `token` as a bearer token on every call, and a client span with its trace context while tracing is
    on (`shared.rpc.tracing`).

    TLS is used when `tls` is True, or when `tls` is None and any certificate file is given;
    `root_cert_file` None then trusts the system roots. `client_cert_file` + `client_key_file` present a
    client certificate (mTLS). `tls_server_name` overrides the name checked against the server's
    certificate (when dialling an IP address, say).
    """
    options = channel_options(address, max_message_bytes)
    if tls is None:
        tls = any(path is not None for path in (root_cert_file, client_cert_file, client_key_file))
    if tls:
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        credentials = channel_credentials(root_cert_file, client_cert_file, client_key_file)
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    interceptors: list[Any] = [ClientTracingInterceptor()]
    if token:
        interceptors.append(BearerTokenInterceptor(token))
    return grpc.intercept_channel(channel, *interceptors)


def wait_for_serving(channel: grpc.Channel, service_name: str = "", timeout: float = 30.0) -> None:
    """Blocks until the server's health reports SERVING for `service_name`.

    Raises TimeoutError after `timeout` seconds, naming the last status or error seen.
    """
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"health of {service_name or 'the server'} not SERVING after {timeout}s: {last}")
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=min(remaining, 2.0))
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        except grpc.RpcError as error:
            last = f"{error.code().name}: {error.details()}"
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
