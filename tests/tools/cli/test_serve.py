"""`intervene serve SERVICE` for real: the console script becomes the service process (exec), which serves
gRPC health against a real Redis and exits on SIGTERM. This is the container image's entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.redis_process import free_port

pytestmark = pytest.mark.slow  # starts a service process

INTERVENE = str(Path(sys.executable).parent / "intervene")


def test_serve_pairstore_becomes_the_server_and_stops_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    token = tmp_path / "token"
    token.write_text("serve-test-token")
    env = {
        **os.environ,
        "INTERVENE_PORT": str(port),
        "INTERVENE_REDIS_URL": redis_url,
        "INTERVENE_AUTH_TOKEN_FILE": str(token),
        "INTERVENE_METRICS_PORT": "0",
        "INTERVENE_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(
        [INTERVENE, "serve", "pairstore"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while status != health_pb2.HealthCheckResponse.SERVING:
                assert process.poll() is None, process.stdout.read().decode(errors="replace")
                assert time.monotonic() < deadline, "pair store never became SERVING"
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                except grpc.RpcError:
                    time.sleep(0.2)
        # exec: the process we started is the server itself, so Kubernetes' SIGTERM reaches it.
        with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
            assert b"services.pairstore" in cmdline.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_an_unknown_service() -> None:
    result = subprocess.run([INTERVENE, "serve", "trainer"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "'trainer' is not one of" in result.stderr
