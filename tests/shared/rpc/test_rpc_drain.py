"""Drain: NOT_SERVING, in-flight calls finish, new calls are refused, background tasks stop afterwards;
and the same through SIGTERM to a real process running `run_service`, which then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect, wait_for_serving
from shared.rpc.health import NOT_SERVING
from tests.shared.rpc.rpc_probe import READ_TOKEN, SERVICE, TOKEN
from tools.redis_process import free_port

REPO = Path(__file__).parents[3]


def _eventually(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s}s")
        time.sleep(0.02)


def _refused(stub: pairstore_pb2_grpc.PairStoreServiceStub) -> bool:
    try:
        stub.GetPair(pairstore_pb2.GetPairRequest(id="ok"), timeout=10)
    except grpc.RpcError as error:
        # gRPC core cancels calls that reach a stopping server on an open connection.
        return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    return False


class RecordingTask:
    def __init__(self, events: list[str], name: str) -> None:
        self.events, self.name = events, name

    def start(self) -> None:
        self.events.append(f"start {self.name}")

    def stop(self) -> None:
        self.events.append(f"stop {self.name}")


def test_drain_in_process(serve, servicer) -> None:
    events: list[str] = []
    running = serve(spec_overrides={"background": [RecordingTask(events, "a"), RecordingTask(events, "b")]})
    assert events == ["start a", "start b"]
    channel = connect(running.address, token=TOKEN)
    stub = pairstore_pb2_grpc.PairStoreServiceStub(channel)
    in_flight = stub.GetPair.future(pairstore_pb2.GetPairRequest(id="slow"), timeout=60)
    assert servicer.slow_started.wait(30)

    drainer = threading.Thread(target=running.drain)
    drainer.start()
    _eventually(lambda: running.health.status() == NOT_SERVING, "NOT_SERVING on drain")
    _eventually(lambda: _refused(stub), "new calls refused while draining")
    # Background tasks outlive the in-flight call: it may depend on them.
    assert events == ["start a", "start b"]

    events.append("release")
    servicer.release_slow.set()
    assert in_flight.result(timeout=30).pair.id == "slow"
    drainer.join(timeout=30)
    assert not drainer.is_alive()
    assert events == ["start a", "start b", "release", "stop b", "stop a"]
    channel.close()


def test_failing_background_start_stops_the_server(serve) -> None:
    events: list[str] = []

    class Broken:
        def start(self) -> None:
            raise RuntimeError("cannot start")

        def stop(self) -> None:
            events.append("stop broken")

    with pytest.raises(RuntimeError, match="cannot start"):
        serve(spec_overrides={"background": [RecordingTask(events, "a"), Broken()]})
    assert events == ["start a", "stop a"]


def test_sigterm_drains_subprocess_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PROBE_DIR": str(tmp_path),
        "INTERVENE_HOST": "127.0.0.1",
        "INTERVENE_PORT": str(port),
        "INTERVENE_AUTH_TOKEN": TOKEN,
        "INTERVENE_READ_TOKEN": READ_TOKEN,
        "INTERVENE_DRAIN_SECONDS": "30",
        "INTERVENE_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.shared.rpc.rpc_drain_service"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        channel = connect(f"127.0.0.1:{port}", token=TOKEN)
        wait_for_serving(channel, SERVICE, timeout=30)
        assert (tmp_path / "background-started").exists()
        in_flight = pairstore_pb2_grpc.PairStoreServiceStub(channel).GetPair.future(
            pairstore_pb2.GetPairRequest(id="slow"), timeout=60
        )
        _eventually((tmp_path / "started").exists, "the slow call reaching the servicer")

        process.send_signal(signal.SIGTERM)
        health = health_pb2_grpc.HealthStub(channel)

        def draining() -> bool:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status
            except grpc.RpcError:
                return True  # the server already refuses new calls
            return status == health_pb2.HealthCheckResponse.NOT_SERVING

        _eventually(draining, "drain after SIGTERM")
        assert process.poll() is None, "the process exited before its in-flight call finished"
        (tmp_path / "release").touch()
        assert in_flight.result(timeout=30).pair.id == ""
        assert process.wait(timeout=30) == 0
        assert (tmp_path / "background-stopped").exists()
        output = process.stdout.read()
        assert "SIGTERM received" in output
        channel.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
