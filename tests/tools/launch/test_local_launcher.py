"""The local launcher for real: torchrun (through this interpreter) starting processes of a small module.

The module stands in for services.trainer (a real training run needs a model and pairs; tests/services/trainer
covers it): it reports what torchrun gave it (rank, world size) and the INTERVENE_TRAINER_* settings it got.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.launch.base import JobState
from tools.launch.job import TrainJob
from tools.launch.local import LocalLauncher

pytestmark = pytest.mark.slow  # torchrun and its ranks: several processes

PROBE = """
import os, sys, time
rank, world = os.environ["RANK"], os.environ["WORLD_SIZE"]
print(f"rank {rank}/{world} pid {os.getpid()} beta={os.environ.get('INTERVENE_TRAINER_BETA')}", flush=True)
if os.environ.get("PROBE_SLEEP"):
    time.sleep(float(os.environ["PROBE_SLEEP"]))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalLauncher]:
    (tmp_path / "probe_trainer.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    local = LocalLauncher(run_root=tmp_path / "runs", python=sys.executable)
    yield local
    for folder in list((tmp_path / "runs").glob("*")):
        local.delete(folder.name, grace_s=5)


def test_a_two_process_job_runs_to_success_with_its_settings(launcher: LocalLauncher) -> None:
    job = TrainJob("probe", env={"INTERVENE_TRAINER_BETA": "0.3"}, nproc_per_node=2, module="probe_trainer")
    launcher.submit(job)
    # Another launcher (another `intervene train wait`) follows the job through its folder alone.
    status = LocalLauncher(run_root=launcher.run_root).wait("probe", timeout_s=120, poll_s=0.2)
    (log,) = launcher.logs("probe").values()
    assert status.state is JobState.SUCCEEDED, log
    assert re.search(r"rank 0/2 pid \d+ beta=0.3", log) and re.search(r"rank 1/2 pid \d+ beta=0.3", log)


def test_a_failing_rank_fails_the_job_with_its_exit_status(
    launcher: LocalLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_EXIT", "3")
    launcher.submit(TrainJob("failing", module="probe_trainer"))
    status = launcher.wait("failing", timeout_s=120, poll_s=0.2)
    assert status.state is JobState.FAILED
    assert "exited with status" in status.message


def test_delete_stops_a_running_job_and_frees_its_name(
    launcher: LocalLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_SLEEP", "300")
    launcher.submit(TrainJob("long", nproc_per_node=2, module="probe_trainer"))
    assert launcher.status("long").state is JobState.RUNNING
    with pytest.raises(FileExistsError, match="intervene train delete long"):
        launcher.submit(TrainJob("long", module="probe_trainer"))
    with pytest.raises(TimeoutError):
        launcher.wait("long", timeout_s=0.5, poll_s=0.1)
    # Both ranks up (torchrun starts them in sessions of their own, so deleting must go through torchrun).
    deadline = time.monotonic() + 120
    while len(ranks := re.findall(r"rank \d/2 pid (\d+)", *launcher.logs("long").values())) < 2:
        assert time.monotonic() < deadline, "the ranks did not start"
        time.sleep(0.2)
    group = int((launcher.run_root / "long" / "pid").read_text())
    launcher.delete("long")
    assert not (launcher.run_root / "long").exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    for rank_pid in ranks:
        with pytest.raises(ProcessLookupError):
            os.kill(int(rank_pid), 0)
    with pytest.raises(FileNotFoundError, match="no local job named 'long'"):
        launcher.status("long")


def test_the_local_back_end_refuses_several_nodes(launcher: LocalLauncher) -> None:
    with pytest.raises(ValueError, match="--backend kubernetes"):
        launcher.submit(TrainJob("multi", nodes=2))
