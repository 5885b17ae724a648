"""The interface every training launcher implements (Kubernetes PyTorchJob or TrainJob, local torchrun)."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Any

from tools.launch.job import TrainJob


class JobState(enum.Enum):
    """Where a job stands; the terminal states are SUCCEEDED and FAILED."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class JobStatus:
    """A job's state and, when it has one, the reason the back end gives."""

    name: str
    state: JobState
    message: str = ""


class JobLauncher(abc.ABC):
    """Starts, watches and removes training jobs in one place (a cluster, this machine)."""

    @abc.abstractmethod
    def submit(self, job: TrainJob) -> str:
        """Start `job`; returns its name. Fails when a job of that name exists."""

    @abc.abstractmethod
    def status(self, name: str) -> JobStatus:
        """The job's current state."""

    @abc.abstractmethod
    def logs(self, name: str, follow: bool = False) -> dict[str, str]:
        """Log text per process group (pod name or local rank group); with `follow`, prints until the job ends."""

    @abc.abstractmethod
    def wait(self, name: str, timeout_s: float, poll_s: float = 5.0) -> JobStatus:
        """Block until the job finishes (SUCCEEDED or FAILED); TimeoutError after `timeout_s`."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Stop the job's processes and remove it."""


class ClusterJobLauncher(JobLauncher):
    """A launcher whose jobs are Kubernetes objects (PyTorchJob, TrainJob): it can show one without a cluster."""

    #: The object's kind, as `kubectl get` names it.
    kind: str

    @abc.abstractmethod
    def manifest(self, job: TrainJob) -> dict[str, Any]:
        """The object `submit(job)` creates, as the API server receives it (what `--dry-run` prints)."""
