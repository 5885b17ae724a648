"""Kubeflow Trainer v2 back end: a training run is a TrainJob (`trainer.kubeflow.org/v1alpha1`) under the
`torch-distributed` ClusterTrainingRuntime, created, watched and deleted through the Kubernetes API.

The runtime owns the JobSet: one replicated job `node` of `numNodes` pods whose container `node` runs the
TrainJob's image, command and env; its torch plugin sets the PET_* variables torchrun reads, as the training
operator does for a PyTorchJob, so the same `torchrun -m services.trainer` runs under either API. What
`spec.trainer` cannot carry (volumes and mounts, the pods' labels, security contexts, node selector,
tolerations, ServiceAccount) goes in a runtime patch on that replicated job. A patch cannot turn off the API
token mount: name a ServiceAccount without one (the chart's) with `service_account`. The pod is the PyTorchJob
back end's (`pod_template`), so both APIs run the same pod. Processes per node: Trainer v2.2 removed
`numProcPerNode` from the Torch runtime policy and derives it from the GPUs each node requests, so
`spec.trainer.numProcPerNode` (still in the v2.3 TrainJob) is sent only when it must differ from that count
(a CPU run, or fewer processes than GPUs).
No cluster is needed to build one: `manifest(job, options)` is what `intervene train submit --dry-run` prints.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tools.launch.base import ClusterJobLauncher, JobState, JobStatus
from tools.launch.cluster import ClusterOptions
from tools.launch.job import TrainJob
from tools.launch.kubernetes import job_labels, pod_template

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
# The torch-distributed runtime's replicated job and its training container are both named "node".
NODE = "node"
PATCH_MANAGER = "intervene.dev/train-submit"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def _serialize(model: Any) -> Any:
    return k8s.ApiClient().sanitize_for_serialization(model)


def build_trainjob(job: TrainJob, options: ClusterOptions) -> dict[str, Any]:
    """The TrainJob for `job`: `nodes` pods of the runtime's `node` job, each running torchrun."""
    template = _serialize(pod_template(job, options))
    pod = template["spec"]
    (container,) = pod.pop("containers")
    trainer: dict[str, Any] = {
        "image": container["image"],
        "command": container["command"],
        "env": container["env"],
        "numNodes": job.nodes,
        "resourcesPerNode": container["resources"],
    }
    if job.nproc_per_node != options.gpus_per_node:
        trainer["numProcPerNode"] = job.nproc_per_node
    # The runtime names the container and the master port; the rest of the pod is patched onto its node job.
    pod_patch = {
        key: pod[key]
        for key in (
            "serviceAccountName",
            "securityContext",
            "nodeSelector",
            "tolerations",
            "volumes",
            "imagePullSecrets",
        )
        if pod.get(key)
    }
    pod_patch["containers"] = [
        {"name": NODE, "securityContext": container["securityContext"], "volumeMounts": container["volumeMounts"]}
    ]
    node_job = {
        "name": NODE,
        "template": {"spec": {"template": {"metadata": template["metadata"], "spec": pod_patch}}},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": job.name, "namespace": options.namespace, "labels": job_labels(options)},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": options.runtime},
            "trainer": trainer,
            "runtimePatches": [
                {
                    "manager": PATCH_MANAGER,
                    "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [node_job]}}},
                }
            ],
        },
    }


def manifest(job: TrainJob, options: ClusterOptions) -> dict[str, Any]:
    """The TrainJob as the API server receives it (what `--dry-run` prints)."""
    return build_trainjob(job, options)


def _reason(error: k8s.ApiException) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except ValueError:
        return str(error.reason)


class TrainJobLauncher(ClusterJobLauncher):
    """Runs jobs as Kubeflow Trainer v2 TrainJobs; needs a kubeconfig or in-cluster credentials."""

    kind = "TrainJob"

    def __init__(
        self,
        options: ClusterOptions | None = None,
        config_file: str | None = None,
        context: str | None = None,
        client_configuration: k8s.Configuration | None = None,
    ) -> None:
        self.options = options or ClusterOptions()
        self._config = (config_file, context, client_configuration)
        self._api: k8s.ApiClient | None = None

    @property
    def api(self) -> k8s.ApiClient:
        # Created on first use so that building a manifest never needs cluster credentials.
        if self._api is None:
            config_file, context, configuration = self._config
            if configuration is None:
                configuration = k8s.Configuration()
                try:
                    k8s_config.load_kube_config(config_file, context, client_configuration=configuration)
                except k8s_config.ConfigException:
                    k8s_config.load_incluster_config(client_configuration=configuration)
            self._api = k8s.ApiClient(configuration)
        return self._api

    def _where(self, name: str) -> str:
        return f"TrainJob {self.options.namespace}/{name}"

    def _get(self, name: str) -> dict[str, Any]:
        try:
            return k8s.CustomObjectsApi(self.api).get_namespaced_custom_object(
                GROUP, VERSION, self.options.namespace, PLURAL, name
            )
        except k8s.ApiException as error:
            raise RuntimeError(f"Failed to get {self._where(name)}: {_reason(error)}") from error

    def manifest(self, job: TrainJob) -> dict[str, Any]:
        return manifest(job, self.options)

    def submit(self, job: TrainJob) -> str:
        body = self.manifest(job)
        try:
            k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
                GROUP, VERSION, self.options.namespace, PLURAL, body
            )
        except k8s.ApiException as error:
            hint = ""
            if error.status == 404:
                hint = " (is Kubeflow Trainer v2 installed? `kubectl get crd trainjobs.trainer.kubeflow.org`)"
            raise RuntimeError(f"Failed to create {self._where(job.name)}: {_reason(error)}{hint}") from error
        return job.name

    def status(self, name: str) -> JobStatus:
        job = self._get(name)
        conditions = {c["type"]: c for c in job.get("status", {}).get("conditions") or [] if c["status"] == "True"}
        for kind, state in (("Failed", JobState.FAILED), ("Complete", JobState.SUCCEEDED)):
            if kind in conditions:
                return JobStatus(name, state, conditions[kind].get("message", ""))
        if "Suspended" in conditions:
            # Kueue keeps a TrainJob suspended until its queue admits it.
            return JobStatus(name, JobState.PENDING, conditions["Suspended"].get("message", ""))
        pods = self._pods(name)
        if pods and all(pod.status is not None and pod.status.phase == "Running" for pod in pods):
            return JobStatus(name, JobState.RUNNING)
        return JobStatus(name, JobState.PENDING)

    def _pods(self, name: str) -> list[k8s.V1Pod]:
        selector = f"{JOBSET_NAME_LABEL}={name},{REPLICATED_JOB_LABEL}={NODE}"
        try:
            pods = k8s.CoreV1Api(self.api).list_namespaced_pod(self.options.namespace, label_selector=selector).items
        except k8s.ApiException as error:
            raise RuntimeError(f"Failed to list the pods of {self._where(name)}: {_reason(error)}") from error
        return sorted(pods, key=lambda pod: int((pod.metadata.labels or {}).get(JOB_INDEX_LABEL, "0")))

    def logs(self, name: str, follow: bool = False) -> dict[str, str]:
        self._get(name)
        core = k8s.CoreV1Api(self.api)
        pods = [pod.metadata.name for pod in self._pods(name)]
        if follow:
            threads = [threading.Thread(target=self._follow, args=(core, pod), daemon=True) for pod in pods]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        texts = {}
        for pod in pods:
            try:
                texts[pod] = core.read_namespaced_pod_log(pod, self.options.namespace, container=NODE)
            except k8s.ApiException as error:
                raise RuntimeError(f"Failed to read the log of pod {pod}: {_reason(error)}") from error
        return texts

    def _follow(self, core: k8s.CoreV1Api, pod: str) -> None:
        """Prints `pod`'s log lines, prefixed with its name, until the container ends."""
        response = core.read_namespaced_pod_log(
            pod, self.options.namespace, container=NODE, follow=True, _preload_content=False
        )
        for line in response.stream():
            for text in line.decode(errors="replace").splitlines():
                sys.stdout.write(f"[{pod}] {text}\n")
        response.release_conn()

    def wait(self, name: str, timeout_s: float, poll_s: float = 5.0) -> JobStatus:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(name)
            if status.state.finished:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self._where(name)} still {status.state.value} after {timeout_s:g} s")
            time.sleep(min(poll_s, max(0.05, deadline - time.monotonic())))

    def delete(self, name: str) -> None:
        try:
            k8s.CustomObjectsApi(self.api).delete_namespaced_custom_object(
                GROUP, VERSION, self.options.namespace, PLURAL, name, propagation_policy="Foreground"
            )
        except k8s.ApiException as error:
            raise RuntimeError(f"Failed to delete {self._where(name)}: {_reason(error)}") from error
