"""Local back end: a training run is `torchrun --standalone` on this machine, in the background.

Each job has a folder under `run_root` (default .run/train/<name>/) holding its log, process id and,
once it ends, its exit code, so that `intervene train logs|wait|delete` work from another shell.
torchrun runs through this interpreter (`python -m torch.distributed.run`), so it uses the same venv.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.launch.base import JobLauncher, JobState, JobStatus
from tools.launch.job import TrainJob

# The shell records torchrun's exit status atomically once it ends; the job folder is the only state.
_RECORD_EXIT = '"$@"; code=$?; echo "$code" > "$EXIT_FILE.part" && mv "$EXIT_FILE.part" "$EXIT_FILE"'


def torchrun_command(job: TrainJob, python: str = sys.executable) -> list[str]:
    """The torchrun command line of a one-node job (rendezvous on a free local port)."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={job.nproc_per_node}",
        "-m",
        job.module,
    ]


class LocalLauncher(JobLauncher):
    """Runs jobs as torchrun process groups on this machine (one node; CPU or local GPUs)."""

    def __init__(self, run_root: Path = Path(".run/train"), python: str = sys.executable) -> None:
        self.run_root = run_root
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _dir(self, name: str) -> Path:
        return self.run_root / name

    def submit(self, job: TrainJob) -> str:
        if job.nodes != 1:
            raise ValueError(
                f"the local back end runs one node, not {job.nodes}: use --nodes 1, or --backend kubernetes"
            )
        folder = self._dir(job.name)
        if folder.exists():
            raise FileExistsError(
                f"a local job named {job.name!r} exists ({folder}): `intervene train delete {job.name} "
                "--backend local` first, or pick another --name"
            )
        folder.mkdir(parents=True)
        command = torchrun_command(job, self.python)
        (folder / "job.json").write_text(json.dumps({"name": job.name, "command": command, "env": job.env}, indent=2))
        env = {**os.environ, **job.env, "EXIT_FILE": str((folder / "exit_code").resolve())}
        with open(folder / "log.txt", "wb") as log:
            process = subprocess.Popen(
                ["/bin/sh", "-c", _RECORD_EXIT, "sh", *command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: delete stops torchrun and every rank with one signal.
                start_new_session=True,
            )
        (folder / "pid").write_text(str(process.pid))
        self._children[job.name] = process
        return job.name

    def _require(self, name: str) -> Path:
        folder = self._dir(name)
        if not (folder / "pid").exists():
            raise FileNotFoundError(f"no local job named {name!r} under {self.run_root}")
        return folder

    def _alive(self, name: str, pid: int) -> bool:
        child = self._children.get(name)
        if child is not None:
            return child.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def status(self, name: str) -> JobStatus:
        folder = self._require(name)
        exit_file = folder / "exit_code"
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or "1")
            if code == 0:
                return JobStatus(name, JobState.SUCCEEDED)
            return JobStatus(name, JobState.FAILED, f"torchrun exited with status {code} (log: {folder / 'log.txt'})")
        if self._alive(name, int((folder / "pid").read_text())):
            return JobStatus(name, JobState.RUNNING)
        if exit_file.exists():  # it ended between the two checks
            return self.status(name)
        return JobStatus(name, JobState.FAILED, "the job's processes are gone without an exit status (killed)")

    def logs(self, name: str, follow: bool = False) -> dict[str, str]:
        log_file = self._require(name) / "log.txt"
        if follow:
            with open(log_file, errors="replace") as log:
                while True:
                    line = log.readline()
                    if line:
                        print(line, end="")
                    elif self.status(name).state.finished:
                        print(log.read(), end="")
                        break
                    else:
                        time.sleep(0.5)
        return {f"{name}-local": log_file.read_text(errors="replace")}

    def wait(self, name: str, timeout_s: float, poll_s: float = 5.0) -> JobStatus:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(name)
            if status.state.finished:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"local job {name!r} still {status.state.value} after {timeout_s:g} s")
            time.sleep(min(poll_s, max(0.05, deadline - time.monotonic())))

    def delete(self, name: str, grace_s: float = 30.0) -> None:
        """SIGTERM to the job's process group (torchrun then stops its ranks), SIGKILL after `grace_s`."""
        folder = self._require(name)
        pid = int((folder / "pid").read_text())
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._group_alive(name, pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._group_alive(name, pid):
            self._signal_group(pid, signal.SIGKILL)
        child = self._children.pop(name, None)
        if child is not None:
            child.wait()
        for path in sorted(folder.iterdir()):
            path.unlink()
        folder.rmdir()

    def _group_alive(self, name: str, pid: int) -> bool:
        """Whether any process of the job's group is left (torchrun outlives the shell while it stops its ranks)."""
        child = self._children.get(name)
        if child is not None:
            child.poll()  # reap the shell, so that a finished leader does not keep the group alive as a zombie
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return False
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
