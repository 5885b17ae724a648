"""`intervene up | status | down` start real processes, report their health and stop exactly them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.protos.intervene.v1 import pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.client import connect
from tests.shared.pairs.factories import make_pair
from tools.stack import local
from tools.stack.state import ProcessRecord, StackState, is_alive


def intervene(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERVENE_RUN_DIR": str(run_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def stack(tmp_path: Path):
    run_dir = tmp_path / "run"
    started = intervene(run_dir, "up", "--service", "pairstore")
    assert started.returncode == 0, started.stderr
    yield run_dir
    intervene(run_dir, "down")


def test_up_status_pairs_down(stack: Path, tmp_path: Path) -> None:
    state = StackState.load(stack)
    assert state is not None and set(state.services) == {"pairstore"}
    assert oct((stack / "secrets" / "token").stat().st_mode & 0o777) == "0o600"

    status = intervene(stack, "status")
    assert status.returncode == 0 and "pairstore     SERVING" in status.stdout

    token = (stack / "secrets" / "token").read_text()
    pairstore = pairstore_pb2_grpc.PairStoreServiceStub(connect(state.address("pairstore"), token=token))
    pairstore.PutPairs(pairstore_pb2.PutPairsRequest(pairs=[make_pair(i) for i in range(3)]))
    stats = intervene(stack, "pairs", "stats")
    assert stats.returncode == 0 and "total      3" in stats.stdout

    out = tmp_path / "pairs.jsonl"
    export = intervene(stack, "pairs", "export", "--format", "jsonl", "--out", str(out))
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["user_prompt"] for row in rows) == [f"request number {i}" for i in range(3)]

    records = [state.redis, *state.services.values()]
    stopped = intervene(stack, "down")
    assert stopped.returncode == 0 and "pairstore" in stopped.stdout and "redis" in stopped.stdout
    assert not any(is_alive(record) for record in records)
    assert intervene(stack, "status").returncode != 0


def test_second_up_is_refused(stack: Path) -> None:
    again = intervene(stack, "up", "--service", "pairstore")
    assert again.returncode != 0 and "already running" in again.stderr


def test_cli_reports_unreachable_service_with_a_hint(tmp_path: Path) -> None:
    result = intervene(tmp_path / "none", "pairs", "stats", "--address", "127.0.0.1:1")
    assert result.returncode != 0 and "UNAVAILABLE" in result.stderr and "intervene up" in result.stderr


def test_light_services_get_one_torch_thread_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    state = StackState(redis_url="redis://127.0.0.1:1", redis=ProcessRecord(pid=1, port=1, log="", marker="redis"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert local.service_env(state, "judge", 2, {})["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in local.service_env(state, "generation", 3, {})
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert local.service_env(state, "judge", 2, {})["OMP_NUM_THREADS"] == "4"
