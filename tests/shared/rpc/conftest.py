"""Fixtures of the RPC scaffold tests: the probe servicer and started servers around it (see rpc_probe.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from shared.protos.intervene.v1 import pairstore_pb2_grpc
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.shared.rpc.rpc_probe import TOKEN, ProbeServicer, make_settings, make_spec


@pytest.fixture
def servicer() -> ProbeServicer:
    return ProbeServicer()


@pytest.fixture
def serve(servicer: ProbeServicer) -> Iterator[Callable[..., RunningServer]]:
    """serve(spec_overrides={...}, **settings_overrides) -> a started server, stopped after the test."""
    started: list[RunningServer] = []

    def _serve(spec_overrides: dict[str, object] | None = None, **settings_overrides: object) -> RunningServer:
        running = start_server(make_spec(servicer, **(spec_overrides or {})), make_settings(**settings_overrides))
        started.append(running)
        return running

    yield _serve
    servicer.release_slow.set()
    for running in started:
        running.stop(grace=None)


@pytest.fixture
def server(serve: Callable[..., RunningServer]) -> RunningServer:
    """A server with the default test settings (auth on, read token set, no dependencies)."""
    return serve()


@pytest.fixture
def stub(server: RunningServer) -> Iterator[pairstore_pb2_grpc.PairStoreServiceStub]:
    """A stub that carries the call token."""
    channel = connect(server.address, token=TOKEN)
    yield pairstore_pb2_grpc.PairStoreServiceStub(channel)
    channel.close()
