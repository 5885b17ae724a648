"""Helpers of the deployment tests: the real helm and kubectl binaries, rendering, and schema validation.

helm and kubectl come from `scripts/install_k8s_tools.sh` (.tools/bin) or PATH; a test that needs one skips
with the install command when it is missing. Built-in kinds are validated with kubernetes-validate's
strict schemas; PyTorchJobs with jsonschema against the training operator v1.9.4 CRD and TrainJobs against the
Kubeflow Trainer v2.3.0 CRD (both vendored in k8s/crds/, see its SOURCE.md), made strict the way the API server's
field validation is (an unknown field is an error).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema", reason="the deploy extra is not installed: pip install '.[deploy]'")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="the deploy extra is not installed: pip install '.[deploy]'"
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "intervene"
K8S = REPO / "k8s"
CRDS = K8S / "crds"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Kinds whose schema lives in a CRD, not in kubernetes-validate.
CUSTOM_KINDS = {"PyTorchJob", "TrainJob", "ScaledObject", "TriggerAuthentication", "ServiceMonitor"}

# Name -> values: the defaults, and the deployments the chart promises to support.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "external-redis": {
        "redis": {"enabled": False, "external": {"url": "redis://redis.data.svc:6379/0"}},
        "auth": {"existingSecret": "intervene-tokens"},
    },
    "no-gpu": {
        "generation": {
            "backend": "transformers",
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "gpu": {"enabled": False},
            "tolerations": [],
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
        },
        "trainer": {"enabled": True, "gpu": {"enabled": False}, "nprocPerNode": "2"},
    },
    "keda": {
        "keda": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "judge": {"backend": "llm", "llm": {"baseUrl": "http://guard.models.svc:8000/v1", "model": "guard"}},
    },
    "training-multi-node": {"trainer": {"enabled": True, "nodes": 3, "nprocPerNode": "8", "gpu": {"count": 8}}},
    "trainjob": {
        "trainer": {"enabled": True, "api": "trainjob", "nodes": 2, "nprocPerNode": "4", "gpu": {"count": 4}},
        "data": {"existingClaim": "intervene-datasets", "mountPath": "/data"},
        "huggingface": {"tokenSecret": {"name": "hf-token", "key": "token"}},
        "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "intervene@p.iam.gserviceaccount.com"}},
        "generation": {"keda": {"enabled": True}},
    },
}


def tool(name: str) -> str:
    """Path of the real `name` binary, or skip the test with how to install it."""
    local = REPO / ".tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: run `bash scripts/install_k8s_tools.sh` (CI does)")
    return found


def helm_template(values: dict[str, Any] | None = None, release: str = "demo", check: bool = True) -> list[dict]:
    """`helm template` of the chart with `values` (a values file), as parsed documents."""
    result = helm("template", release, str(CHART), "--namespace", "intervene", values=values, check=check)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def helm(*args: str, values: dict[str, Any] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real helm binary; `values` are passed as a values file."""
    command = [tool("helm"), *args]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        if values is not None:
            yaml.safe_dump(values, values_file)
            values_file.flush()
            command += ["--values", values_file.name]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr}")
    return result


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize` of a kustomization folder, as parsed documents."""
    result = subprocess.run([tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate_builtin(doc: dict, version: str) -> None:
    """kubernetes-validate, strict (unknown fields are errors), for Kubernetes `version`."""
    kubernetes_validate.validate(doc, version, strict=True)


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _crd_validator(file_name: str, version_name: str) -> jsonschema.Draft7Validator:
    """The strict openAPIV3Schema of one version of a vendored CRD (a missing file fails: they are in the repo)."""
    crd_file = CRDS / file_name
    (version,) = [v for v in _load_yaml(crd_file)["spec"]["versions"] if v["name"] == version_name]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is an ObjectMeta the CRD leaves open; its own fields are checked by the API server.
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@functools.cache
def pytorchjob_validator() -> jsonschema.Draft7Validator:
    """The openAPIV3Schema of kubeflow.org/v1 PyTorchJob (training operator v1.9.4), made strict."""
    return _crd_validator("kubeflow.org_pytorchjobs.yaml", "v1")


@functools.cache
def trainjob_validator() -> jsonschema.Draft7Validator:
    """The openAPIV3Schema of trainer.kubeflow.org/v1alpha1 TrainJob (Kubeflow Trainer v2.3.0), made strict."""
    return _crd_validator("trainer.kubeflow.org_trainjobs.yaml", "v1alpha1")


@functools.cache
def torch_distributed_runtime() -> dict:
    """The `torch-distributed` ClusterTrainingRuntime Kubeflow Trainer v2.3.0 installs."""
    return _load_yaml(CRDS / "torch_distributed_runtime.yaml")


# Variables the torch plugin sets itself; a TrainJob that sets one is refused by Trainer's webhook.
TORCH_RESERVED_ENV = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}
_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def validate_trainjob(doc: dict) -> None:
    """jsonschema validation of a TrainJob against the v2.3.0 CRD, its CEL rules on the name, and what the
    torch-distributed runtime needs: the runtime's name, its `node` job and container, no reserved env."""
    assert doc["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and doc["kind"] == "TrainJob"
    trainjob_validator().validate(doc)
    name = doc["metadata"]["name"]
    assert _RFC1035.match(name) and len(name) <= 63, f"metadata.name {name!r} is not an RFC 1035 label"
    runtime = torch_distributed_runtime()
    assert doc["spec"]["runtimeRef"]["name"] == runtime["metadata"]["name"]
    assert doc["spec"]["runtimeRef"].get("kind", "ClusterTrainingRuntime") == runtime["kind"]
    reserved = {e["name"] for e in doc["spec"]["trainer"].get("env", [])} & TORCH_RESERVED_ENV
    assert not reserved, f"the torch plugin reserves {reserved}"
    jobs = {j["name"]: j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    for patch in doc["spec"].get("runtimePatches", []):
        for job in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            assert job["name"] in jobs, f"the runtime has no replicated job {job['name']!r}"
            names = {c["name"] for c in jobs[job["name"]]["template"]["spec"]["template"]["spec"]["containers"]}
            for container in job["template"]["spec"]["template"]["spec"].get("containers", []):
                assert container["name"] in names, f"the runtime's {job['name']} job has no {container['name']!r}"


def validate_pytorchjob(doc: dict) -> None:
    """jsonschema validation of a PyTorchJob against the CRD, plus what the operator itself requires."""
    assert doc["apiVersion"] == "kubeflow.org/v1" and doc["kind"] == "PyTorchJob"
    pytorchjob_validator().validate(doc)
    specs = doc["spec"]["pytorchReplicaSpecs"]
    assert set(specs) <= {"Master", "Worker"}, f"unknown replica types {set(specs)}"
    assert specs["Master"]["replicas"] == 1, "a PyTorchJob has exactly one Master"
    for spec in specs.values():
        names = [c["name"] for c in spec["template"]["spec"]["containers"]]
        assert "pytorch" in names, "the operator needs a container named 'pytorch'"


def containers(doc: dict) -> list[dict]:
    """Every container (and init container) of a workload document."""
    kind = doc["kind"]
    if kind == "Pod":
        specs = [doc["spec"]]
    elif kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        specs = [doc["spec"]["template"]["spec"]]
    elif kind == "PyTorchJob":
        specs = [s["template"]["spec"] for s in doc["spec"]["pytorchReplicaSpecs"].values()]
    elif kind == "TrainJob":
        return [trainjob_container(doc)]
    else:
        return []
    return [c for spec in specs for c in spec.get("containers", []) + spec.get("initContainers", [])]


def pod_specs(doc: dict) -> list[dict]:
    """The pod specs of a workload document."""
    kind = doc["kind"]
    if kind == "Pod":
        return [doc["spec"]]
    if kind in {"Deployment", "StatefulSet"}:
        return [doc["spec"]["template"]["spec"]]
    if kind == "PyTorchJob":
        return [s["template"]["spec"] for s in doc["spec"]["pytorchReplicaSpecs"].values()]
    if kind == "TrainJob":
        return [trainjob_pod_patch(doc)]
    return []


def trainjob_pod_patch(doc: dict) -> dict:
    """The pod spec a TrainJob patches onto the runtime's `node` job."""
    (patch,) = doc["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return job["template"]["spec"]["template"]["spec"]


def trainjob_container(doc: dict) -> dict:
    """The `node` container of a TrainJob's pods as it will run: the trainer's image, command, env and resources
    merged with the runtime patch's security context and mounts."""
    (patched,) = trainjob_pod_patch(doc)["containers"]
    trainer = doc["spec"]["trainer"]
    return {
        **patched,
        "image": trainer["image"],
        "command": trainer["command"],
        "env": trainer.get("env", []),
        "resources": trainer["resourcesPerNode"],
    }
