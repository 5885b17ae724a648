"""Starts and stops the local stack: a durable Redis, then each service that exists, on 127.0.0.1.

Services run as `python -m services.<name>` child processes in their own sessions (they outlive the
CLI), with random bearer tokens written to 0600 files in the run folder, logs under `logs/`, and the
ports of their peers in their environment. `up` waits until each answers SERVING on gRPC health.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.redis_process import RedisProcess, free_port, redis_server_binary
from shared.stack.state import ProcessRecord, StackState, is_alive

# Start order: each service's peers come before it.
SERVICES: dict[str, int] = {"pairstore": 50054, "judge": 50052, "generation": 50051, "intervention": 50053}


def available_services() -> list[str]:
    """The services whose package exists in this checkout, in start order."""
    return [name for name in SERVICES if importlib.util.find_spec(f"services.{name}") is not None]


def _port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _write_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(32))


def _service_env(state: StackState, name: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "INTERVENE_HOST": "127.0.0.1",
            "INTERVENE_PORT": str(port),
            "INTERVENE_REDIS_URL": state.redis_url,
            "INTERVENE_AUTH_TOKEN_FILE": state.token_file,
            "INTERVENE_READ_TOKEN_FILE": state.read_token_file,
            "PYTHONUNBUFFERED": "1",
        }
    )
    for peer, record in state.services.items():
        env[f"INTERVENE_{peer.upper()}_ADDRESS"] = f"127.0.0.1:{record.port}"
    env.update(extra)
    return env


def wait_serving(address: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Blocks until the server at `address` reports SERVING on gRPC health."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"the process serving {address} exited")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{address} did not report SERVING within {timeout_s:.0f}s")


def up(
    folder: Path,
    services: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 300.0,
    on_started: Callable[[str, str], None] = lambda name, address: None,
) -> StackState:
    """Starts Redis and the services (all available ones by default); returns the recorded state."""
    existing = StackState.load(folder)
    if existing is not None and is_alive(existing.redis):
        raise RuntimeError(f"a stack is already running from {folder}; run `intervene down` first")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    redis = RedisProcess(data_dir=folder / "redis", port=_port(6390)).start()
    state = StackState(
        redis_url=redis.url,
        redis=ProcessRecord(
            pid=redis.process.pid,
            port=redis.port,
            log=str(folder / "redis" / "redis.log"),
            marker=Path(redis_server_binary()).name,
        ),
        token_file=str(folder / "secrets" / "token"),
        read_token_file=str(folder / "secrets" / "read_token"),
    )
    _write_secret(Path(state.token_file))
    _write_secret(Path(state.read_token_file))
    state.save(folder)
    try:
        for name in services if services is not None else available_services():
            port = _port(SERVICES[name])
            log = folder / "logs" / f"{name}.log"
            with log.open("ab") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env=_service_env(state, name, port, env or {}),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            record = ProcessRecord(pid=process.pid, port=port, log=str(log), marker=f"services.{name}")
            state.services[name] = record
            state.save(folder)
            try:
                wait_serving(f"127.0.0.1:{port}", timeout_s, alive=lambda p=process: p.poll() is None)
            except (RuntimeError, TimeoutError) as error:
                raise RuntimeError(f"{name} did not start: {error}; see {log}") from None
            on_started(name, f"127.0.0.1:{port}")
    except BaseException:
        down(folder)
        raise
    return state


def down(folder: Path, timeout_s: float = 20.0) -> list[str]:
    """Stops exactly the processes `up` recorded (services first, Redis last); returns what it stopped."""
    state = StackState.load(folder)
    if state is None:
        return []
    records = [*reversed(state.services.items()), ("redis", state.redis)]
    stopped = []
    for name, record in records:
        if not is_alive(record):
            continue
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while is_alive(record) and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.1)
        if is_alive(record):
            os.kill(record.pid, signal.SIGKILL)
        _reap(record.pid)
        stopped.append(name)
    (folder / "stack.json").unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    """Collects the exit status when the process is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def status(folder: Path) -> dict[str, str]:
    """Health of each recorded process: SERVING, NOT_SERVING, UNREACHABLE or DEAD."""
    state = StackState.load(folder)
    if state is None:
        return {}
    report = {"redis": "SERVING" if is_alive(state.redis) else "DEAD"}
    for name, record in state.services.items():
        if not is_alive(record):
            report[name] = "DEAD"
            continue
        with grpc.insecure_channel(f"127.0.0.1:{record.port}") as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                report[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            except grpc.RpcError:
                report[name] = "UNREACHABLE"
    return report
