"""Kubernetes back end: a training run is a Kubeflow PyTorchJob (training operator v1), built with the
`kubeflow-training` SDK and created, watched and deleted with its `TrainingClient`.

The job matches charts/intervene/templates/trainer.yaml and k8s/base: a Master (and `nodes - 1` Workers)
running `torchrun -m services.trainer`, which reads the operator's PET_* variables; the trainer streams pairs
from the pair store of a Helm release and reads the release's tokens from its Secret; checkpoints go to a PVC.
No cluster is needed to build one: `manifest(job)` is what `intervene train submit --dry-run` prints.
"""

from __future__ import annotations

from typing import Any

from kubeflow.training import TrainingClient, models
from kubeflow.training.api_client import ApiClient
from kubernetes import client as k8s

from tools.launch.base import ClusterJobLauncher, JobState, JobStatus
from tools.launch.cluster import (
    CHECKPOINT_DIR,
    MASTER_PORT,
    SECRET_DIR,
    ClusterOptions,
    default_image,
    release_fullname,
)
from tools.launch.job import ENV_PREFIX, TrainJob

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def pod_template(job: TrainJob, options: ClusterOptions) -> k8s.V1PodTemplateSpec:
    """The trainer pod: torchrun with the job's and the release's settings, checkpoint PVC, Secret, hardening."""
    env = {**options.cluster_env(), **job.env}
    if f"{ENV_PREFIX}PAIRS_FILE" in env:
        # An exported file on the checkpoint volume replaces the pair store as the pair source.
        env.pop(f"{ENV_PREFIX}PAIR_STORE")
    quantities: dict[str, Any] = {"cpu": options.cpu, "memory": options.memory}
    if options.gpus_per_node:
        quantities[options.gpu_resource] = options.gpus_per_node
    container = k8s.V1Container(
        name="pytorch",  # the operator finds the training container by this name
        image=options.image or default_image(gpu=options.gpus_per_node > 0),
        image_pull_policy="IfNotPresent",
        command=["torchrun", "-m", job.module],
        env=[k8s.V1EnvVar(name=name, value=value) for name, value in sorted(env.items())],
        ports=[k8s.V1ContainerPort(name="pytorchjob-port", container_port=MASTER_PORT, protocol="TCP")],
        resources=k8s.V1ResourceRequirements(requests=dict(quantities), limits=dict(quantities)),
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[
            k8s.V1VolumeMount(name="checkpoints", mount_path=CHECKPOINT_DIR),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
            k8s.V1VolumeMount(name="cache", mount_path="/cache"),
            k8s.V1VolumeMount(name="shm", mount_path="/dev/shm"),
            k8s.V1VolumeMount(name="secrets", mount_path=SECRET_DIR, read_only=True),
        ],
    )
    volumes = [
        k8s.V1Volume(
            name="checkpoints",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=options.checkpoint_claim),
        ),
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="4Gi")),
        k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="100Gi")),
        k8s.V1Volume(name="shm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=options.shm_size)),
        k8s.V1Volume(
            name="secrets",
            secret=k8s.V1SecretVolumeSource(
                secret_name=f"{release_fullname(options.release)}-secrets",
                default_mode=0o440,
                items=[
                    k8s.V1KeyToPath(key="read-token", path="read-token"),
                    k8s.V1KeyToPath(key="auth-token", path="auth-token"),
                ],
            ),
        ),
    ]
    tolerations = (
        [k8s.V1Toleration(key=options.gpu_resource, operator="Exists", effect="NoSchedule")]
        if options.gpus_per_node
        else None
    )
    return k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(
            labels={
                "app.kubernetes.io/name": "intervene",
                # The release's NetworkPolicy lets only its own pods reach the pair store.
                "app.kubernetes.io/instance": options.release,
                "app.kubernetes.io/component": "trainer",
                "intervene.dev/redis-client": "true",
            }
        ),
        spec=k8s.V1PodSpec(
            containers=[container],
            volumes=volumes,
            automount_service_account_token=False,
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                fs_group=10001,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
            ),
            tolerations=tolerations,
            node_selector=options.node_selector or None,
            service_account_name=options.service_account,
        ),
    )


def job_labels(options: ClusterOptions) -> dict[str, str]:
    """The job object's labels; with `options.queue`, Kueue's queue label (Kueue admits PyTorchJobs and TrainJobs
    alike, holding them suspended until their LocalQueue has quota)."""
    labels = {"app.kubernetes.io/name": "intervene", "app.kubernetes.io/component": "trainer"}
    if options.queue:
        labels[QUEUE_LABEL] = options.queue
    return labels


def build_pytorchjob(job: TrainJob, options: ClusterOptions) -> models.KubeflowOrgV1PyTorchJob:
    """The PyTorchJob for `job`: one Master, `nodes - 1` Workers, `nproc_per_node` torchrun processes each."""
    template = pod_template(job, options)
    replica_specs = {
        "Master": models.KubeflowOrgV1ReplicaSpec(replicas=1, restart_policy=options.restart_policy, template=template)
    }
    if job.nodes > 1:
        replica_specs["Worker"] = models.KubeflowOrgV1ReplicaSpec(
            replicas=job.nodes - 1, restart_policy=options.restart_policy, template=template
        )
    return models.KubeflowOrgV1PyTorchJob(
        api_version="kubeflow.org/v1",
        kind="PyTorchJob",
        metadata=k8s.V1ObjectMeta(
            name=job.name,
            namespace=options.namespace,
            labels=job_labels(options),
        ),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            nproc_per_node=str(job.nproc_per_node),
            pytorch_replica_specs=replica_specs,
            run_policy=models.KubeflowOrgV1RunPolicy(
                clean_pod_policy=options.clean_pod_policy,
                backoff_limit=options.backoff_limit,
                ttl_seconds_after_finished=options.ttl_seconds_after_finished,
            ),
        ),
    )


def manifest(job: TrainJob, options: ClusterOptions) -> dict[str, Any]:
    """The PyTorchJob as the API server receives it (camelCase, no null fields)."""
    return ApiClient().sanitize_for_serialization(build_pytorchjob(job, options))


class KubernetesLauncher(ClusterJobLauncher):
    """Runs jobs as PyTorchJobs through the training operator; needs a kubeconfig or in-cluster credentials."""

    kind = "PyTorchJob"

    def __init__(
        self,
        options: ClusterOptions | None = None,
        config_file: str | None = None,
        context: str | None = None,
        client_configuration: k8s.Configuration | None = None,
    ) -> None:
        self.options = options or ClusterOptions()
        self._client_args = {
            "config_file": config_file,
            "context": context,
            "client_configuration": client_configuration,
            "namespace": self.options.namespace,
        }
        self._client: TrainingClient | None = None

    @property
    def client(self) -> TrainingClient:
        # Created on first use so that building a manifest never needs cluster credentials.
        if self._client is None:
            self._client = TrainingClient(**self._client_args)
        return self._client

    def manifest(self, job: TrainJob) -> dict[str, Any]:
        return manifest(job, self.options)

    def submit(self, job: TrainJob) -> str:
        self.client.create_job(job=build_pytorchjob(job, self.options), namespace=self.options.namespace)
        return job.name

    def status(self, name: str) -> JobStatus:
        job = self.client.get_job(name, namespace=self.options.namespace)
        conditions = [c for c in (job.status.conditions if job.status else None) or [] if c.status == "True"]
        if not conditions:
            return JobStatus(name, JobState.PENDING)
        latest = conditions[-1]
        state = {
            "Succeeded": JobState.SUCCEEDED,
            "Failed": JobState.FAILED,
            "Running": JobState.RUNNING,
            "Restarting": JobState.RUNNING,
        }.get(latest.type, JobState.PENDING)
        return JobStatus(name, state, latest.message or "")

    def logs(self, name: str, follow: bool = False) -> dict[str, str]:
        logs, _ = self.client.get_job_logs(name, namespace=self.options.namespace, is_master=False, follow=follow)
        return logs

    def wait(self, name: str, timeout_s: float, poll_s: float = 5.0) -> JobStatus:
        try:
            self.client.wait_for_job_conditions(
                name,
                namespace=self.options.namespace,
                expected_conditions={"Succeeded"},
                wait_timeout=int(timeout_s),
                polling_interval=max(1, int(poll_s)),
            )
        except RuntimeError as error:
            status = self.status(name)
            if status.state is JobState.FAILED:
                return status
            raise RuntimeError(f"waiting for PyTorchJob {self.options.namespace}/{name}: {error}") from error
        return self.status(name)

    def delete(self, name: str) -> None:
        self.client.delete_job(name, namespace=self.options.namespace)
