"""What a running local stack looks like on disk: pids, ports, logs and token files under a run folder.

Clients (the CLI, tests) read this to find the services; `down` reads it to stop exactly the
processes `up` started.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "stack.json"


def run_dir() -> Path:
    """The run folder: `INTERVENE_RUN_DIR`, else `.run` in the current directory."""
    return Path(os.environ.get("INTERVENE_RUN_DIR", ".run")).resolve()


@dataclass
class ProcessRecord:
    pid: int
    port: int
    log: str
    # A word that must appear in /proc/<pid>/cmdline, so a recycled pid is never signalled.
    marker: str


@dataclass
class StackState:
    redis_url: str
    redis: ProcessRecord
    services: dict[str, ProcessRecord] = field(default_factory=dict)
    token_file: str = ""
    read_token_file: str = ""

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.services[service].port}"

    def save(self, folder: Path) -> None:
        path = folder / STATE_FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        partial.replace(path)

    @classmethod
    def load(cls, folder: Path) -> StackState | None:
        path = folder / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(
            redis_url=raw["redis_url"],
            redis=ProcessRecord(**raw["redis"]),
            services={name: ProcessRecord(**record) for name, record in raw["services"].items()},
            token_file=raw.get("token_file", ""),
            read_token_file=raw.get("read_token_file", ""),
        )


def is_alive(record: ProcessRecord) -> bool:
    """True when the recorded pid still runs the recorded program."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return record.marker.encode() in cmdline
