"""Helpers of the deployment tests: the real helm and kubectl binaries, rendering, and schema validation.

helm and kubectl come from `scripts/install_k8s_tools.sh` (.tools/bin) or PATH; a test that needs one skips
with the install command when it is missing. Built-in kinds are validated with kubernetes-validate's
strict schemas; PyTorchJobs with jsonschema against the training operator v1.9.4 CRD, made strict the way
the API server's field validation is (an unknown field is an error).
"""

from __future__ import annotations

import copy
import functools
import os
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
# The upstream CRDs, vendored (k8s/crds/SOURCE.md): the custom kinds are validated without a cluster or a network.
CRDS = K8S / "crds"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Kinds whose schema lives in a CRD, not in kubernetes-validate.
CUSTOM_KINDS = {"PyTorchJob", "ScaledObject", "TriggerAuthentication", "ServiceMonitor"}

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


@functools.cache
def pytorchjob_validator() -> jsonschema.Draft7Validator:
    """The openAPIV3Schema of kubeflow.org/v1 PyTorchJob (training operator v1.9.4), made strict."""
    crd_file = CRDS / "kubeflow.org_pytorchjobs.yaml"
    crd = yaml.load(crd_file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is an ObjectMeta the CRD leaves open; its own fields are checked by the API server.
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


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
    return []
