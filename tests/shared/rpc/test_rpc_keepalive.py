"""The server's keepalive options accept the clients' pings during a long call that goes quiet.

A gRPC server answers pings that come more often than its minimum interval (5 minutes by default) with strikes
and, after two, GOAWAY too_many_pings: a client's long wait (WatchJob, a slow generation) then fails with
UNAVAILABLE "Too many pings". Here the stream sends one message and then nothing for 45 s while the client pings
every 11 s, just above the servers' accepted minimum (KEEPALIVE_TIME_MS // 3). With a misspelt option (gRPC
ignores unknown names silently) the call fails after about 33 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from shared.rpc.client import KEEPALIVE_TIME_MS
from shared.rpc.server import KEEPALIVE_SERVER_OPTIONS

pytestmark = pytest.mark.slow

QUIET_SECONDS = 45
CLIENT_PING_MS = KEEPALIVE_TIME_MS // 3 + 1_000


def _quiet_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"first"  # the server has sent data: from here on the client's pings count against it
    time.sleep(QUIET_SECONDS)
    yield b"done"


@pytest.fixture()
def server_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=KEEPALIVE_SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "test.Quiet", {"Wait": grpc.unary_stream_rpc_method_handler(_quiet_stream)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def test_pings_during_a_quiet_stream_are_accepted(server_port: int) -> None:
    options = [
        ("grpc.keepalive_time_ms", CLIENT_PING_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{server_port}", options=options) as channel:
        wait = channel.unary_stream("/test.Quiet/Wait")
        assert list(wait(b"", timeout=QUIET_SECONDS + 30)) == [b"first", b"done"]
