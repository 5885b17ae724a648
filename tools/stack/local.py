"""Starts and stops the local stack: a durable Redis, then each service that exists, on 127.0.0.1.

Services run as `python -m services.<name>` child processes in their own sessions (they outlive the
CLI), with random bearer tokens written to 0600 files in the run folder, logs under `logs/`, and the
ports of their peers in their environment. `up` waits until each answers SERVING on gRPC health.
`kill`, `start_service` and `start_redis` take one process down hard and bring it back on the same port
(fault drills: tests/e2e, tests/reliability).
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

from tools.redis_process import RedisProcess, free_port, redis_server_binary
from tools.stack.state import ProcessRecord, StackState, is_alive

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


# The services that share one machine's cores with the generation service: their torch work (the classifier judge's
# small encoder) is light, and a second multi-threaded torch process makes both stall on each other's spinning
# threads, so they get one thread unless OMP_NUM_THREADS is set.
SINGLE_THREADED = ("judge", "intervention", "pairstore")


def service_env(state: StackState, name: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    """A service's environment: this process's, the stack's Redis, token files and peers, then `extra`."""
    env = dict(os.environ)
    if name in SINGLE_THREADED:
        env.setdefault("OMP_NUM_THREADS", "1")
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
    default_ports: bool = True,
) -> StackState:
    """Starts Redis and the services (all available ones by default); returns the recorded state.

    Each process takes its default port when free; with `default_ports=False`, a random free port instead
    (stacks started side by side, as test runs on one machine do, then never race for the same port).
    """
    existing = StackState.load(folder)
    if existing is not None and is_alive(existing.redis):
        raise RuntimeError(f"a stack is already running from {folder}; run `intervene down` first")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    redis = RedisProcess(data_dir=folder / "redis", port=_port(6390) if default_ports else free_port()).start()
    state = StackState(
        redis_url=redis.url,
        redis=_redis_record(redis),
        token_file=str(folder / "secrets" / "token"),
        read_token_file=str(folder / "secrets" / "read_token"),
    )
    _write_secret(Path(state.token_file))
    _write_secret(Path(state.read_token_file))
    state.save(folder)
    try:
        for name in services if services is not None else available_services():
            start_service(folder, state, name, env, timeout_s, port=None if default_ports else free_port())
            on_started(name, state.address(name))
    except BaseException:
        down(folder)
        raise
    return state


def start_service(
    folder: Path,
    state: StackState,
    name: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 300.0,
    port: int | None = None,
) -> ProcessRecord:
    """Starts one service of the stack, records it and waits for SERVING. Its port: `port`, else the one it had,
    else its default one when free."""
    known = state.services.get(name)
    if port is None:
        port = known.port if known is not None else _port(SERVICES[name])
    log = folder / "logs" / f"{name}.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=service_env(state, name, port, env or {}),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    record = ProcessRecord(pid=process.pid, port=port, log=str(log), marker=f"services.{name}")
    state.services[name] = record
    state.save(folder)
    try:
        wait_serving(f"127.0.0.1:{port}", timeout_s, alive=lambda: process.poll() is None)
    except (RuntimeError, TimeoutError) as error:
        raise RuntimeError(f"{name} did not start: {error}; see {log}") from None
    return record


def kill(record: ProcessRecord) -> None:
    """kill -9 a recorded process and waits until it is gone (a chaos drill: it gets no chance to clean up)."""
    if is_alive(record):
        os.kill(record.pid, signal.SIGKILL)
    while is_alive(record):
        _reap(record.pid)
        time.sleep(0.02)
    _reap(record.pid)


def start_redis(folder: Path, state: StackState) -> ProcessRecord:
    """Starts the stack's Redis again on its port and data folder (the AOF is replayed); records the new pid."""
    state.redis = _redis_record(RedisProcess(data_dir=folder / "redis", port=state.redis.port).start())
    state.save(folder)
    return state.redis


def _redis_record(redis: RedisProcess) -> ProcessRecord:
    return ProcessRecord(
        pid=redis.process.pid,
        port=redis.port,
        log=str(redis.data_dir / "redis.log"),
        marker=Path(redis_server_binary()).name,
    )


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
