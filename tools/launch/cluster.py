"""Where a training job runs in a cluster: the release it trains against, its image and resources.

Kept apart from tools/launch/kubernetes.py so that the CLI and `--dry-run` option handling import nothing of
the Kubernetes SDK until a cluster is actually used. Names follow charts/intervene (its `intervene.fullname`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version

from tools.launch.job import ENV_PREFIX

SECRET_DIR = "/var/run/secrets/intervene"
CHECKPOINT_DIR = "/checkpoints"
MASTER_PORT = 23456
# Settings the cluster decides (where pairs, tokens and outputs are inside the pod), not the user's machine.
CLUSTER_FIELDS = frozenset(
    {
        "pair_store",
        "pair_store_token",
        "pair_store_token_file",
        "generation_address",
        "generation_token",
        "generation_token_file",
        "output_dir",
        "progress",
    }
)


def release_fullname(release: str) -> str:
    """The chart's `intervene.fullname` for a release: its objects are named `<fullname>-<component>`."""
    return release if "intervene" in release else f"{release}-intervene"


def default_image(gpu: bool) -> str:
    """The image of this package's version; the GPU flavor carries the `-gpu` suffix (Dockerfile)."""
    return f"ghcr.io/intervene/intervene:{version('intervene')}{'-gpu' if gpu else ''}"


@dataclass(frozen=True)
class ClusterOptions:
    """Where and with what a job runs in the cluster."""

    namespace: str = "default"
    release: str = "intervene"
    image: str | None = None
    gpus_per_node: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "8"
    memory: str = "64Gi"
    checkpoint_claim: str = "intervene-trainer-checkpoints"
    shm_size: str = "8Gi"
    restart_policy: str = "OnFailure"
    clean_pod_policy: str = "Running"
    backoff_limit: int = 3
    ttl_seconds_after_finished: int = 86400
    node_selector: dict[str, str] = field(default_factory=dict)
    # The pods' ServiceAccount (none: the namespace's default); the chart's has no API token mounted.
    service_account: str | None = None
    # A Kueue LocalQueue that admits the job (either API); TrainJob only: the ClusterTrainingRuntime it runs under.
    queue: str | None = None
    runtime: str = "torch-distributed"

    def cluster_env(self) -> dict[str, str]:
        """The trainer settings a pod gets from the release: pair store, generation, token files, outputs."""
        fullname = release_fullname(self.release)
        return {
            f"{ENV_PREFIX}PAIR_STORE": f"{fullname}-pairstore:50054",
            f"{ENV_PREFIX}PAIR_STORE_TOKEN_FILE": f"{SECRET_DIR}/read-token",
            f"{ENV_PREFIX}GENERATION_ADDRESS": f"{fullname}-generation:50051",
            f"{ENV_PREFIX}GENERATION_TOKEN_FILE": f"{SECRET_DIR}/auth-token",
            f"{ENV_PREFIX}OUTPUT_DIR": CHECKPOINT_DIR,
            f"{ENV_PREFIX}PROGRESS": "false",
        }
