"""Policies every rendered workload must follow, over the chart (every value set) and the k8s/ overlays.

- every container has CPU and memory requests and limits, a pinned image tag and a non-root, no-escalation,
  read-only, capability-free securityContext;
- every long-running container (Deployments, the Redis StatefulSet) has readiness and liveness probes:
  native gRPC probes for the services. Pods that run to completion (the `helm test` pod, PyTorchJob
  replicas) have none: a probe would only restart a finished or a training process;
- no secret value appears in a ConfigMap or as an env literal: secrets are mounted files or secretKeyRefs.
"""

from __future__ import annotations

import base64
import functools
import re

import pytest

from tests.deploy.manifests import K8S, VALUE_SETS, containers, helm_template, kustomize, pod_specs

SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|CREDENTIAL)", re.IGNORECASE)
KNOWN_SECRET = "policy-test-known-secret-value"
SOURCES = [f"chart:{name}" for name in sorted(VALUE_SETS)] + ["k8s:single-node", "k8s:multi-node", "k8s:trainjob"]


@functools.cache
def documents(source: str) -> tuple[dict, ...]:
    kind, name = source.split(":")
    if kind == "k8s":
        return tuple(kustomize(K8S / "overlays" / name))
    values = {**VALUE_SETS[name], "auth": {**VALUE_SETS[name].get("auth", {}), "readToken": KNOWN_SECRET}}
    if "existingSecret" in values["auth"]:
        values["auth"] = VALUE_SETS[name]["auth"]
    return tuple(helm_template(values))


def workloads(source: str) -> list[dict]:
    return [doc for doc in documents(source) if containers(doc)]


def runs_to_completion(doc: dict) -> bool:
    if doc["kind"] in {"PyTorchJob", "TrainJob"}:
        return True
    return doc["kind"] == "Pod" and doc["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"


@pytest.mark.parametrize("source", SOURCES)
def test_every_container_has_requests_and_limits(source: str) -> None:
    for doc in workloads(source):
        for container in containers(doc):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(bound, {}))
                assert not missing, f"{doc['metadata']['name']}/{container['name']}: no {bound} for {missing}"


@pytest.mark.parametrize("source", SOURCES)
def test_every_image_tag_is_pinned(source: str) -> None:
    for doc in workloads(source):
        for container in containers(doc):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{doc['metadata']['name']}: image {image!r} has no tag"
            assert tag != "latest", f"{doc['metadata']['name']}: image {image!r} is not pinned"


@pytest.mark.parametrize("source", SOURCES)
def test_every_pod_runs_non_root_read_only_without_capabilities(source: str) -> None:
    for doc in workloads(source):
        for spec in pod_specs(doc):
            pod = spec.get("securityContext", {})
            assert pod.get("runAsNonRoot") is True, f"{doc['metadata']['name']}: pod may run as root"
            assert pod.get("runAsUser", 1) != 0
            assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault"
            if doc["kind"] == "TrainJob":
                # A runtime patch cannot set automountServiceAccountToken: the chart's ServiceAccount turns it off.
                assert spec.get("serviceAccountName"), f"{doc['metadata']['name']}: no ServiceAccount without a token"
            else:
                assert spec.get("automountServiceAccountToken") is False, "no pod needs the Kubernetes API"
            for container in spec["containers"]:
                context = container.get("securityContext", {})
                where = f"{doc['metadata']['name']}/{container['name']}"
                assert context.get("runAsNonRoot") is True, where
                assert context.get("allowPrivilegeEscalation") is False, where
                assert context.get("readOnlyRootFilesystem") is True, where
                assert context.get("capabilities", {}).get("drop") == ["ALL"], where
                # A read-only root needs a writable /tmp.
                assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


@pytest.mark.parametrize("source", [s for s in SOURCES if s.startswith("chart:")])
def test_long_running_containers_have_probes_and_services_use_native_grpc_probes(source: str) -> None:
    for doc in workloads(source):
        if runs_to_completion(doc):
            continue
        for container in containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            if doc["kind"] == "Deployment":
                grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
                # Readiness follows Redis (health ""); liveness does not (health "liveness", shared/rpc/health.py).
                assert container["readinessProbe"]["grpc"] == {"port": grpc_port}, where
                assert container["livenessProbe"]["grpc"] == {"port": grpc_port, "service": "liveness"}, where


@pytest.mark.parametrize("source", SOURCES)
def test_no_secret_value_in_a_configmap_or_an_env_literal(source: str) -> None:
    docs = documents(source)
    secret_values = {KNOWN_SECRET}
    for doc in docs:
        if doc["kind"] == "Secret":
            secret_values |= {base64.b64decode(v).decode() for v in doc.get("data", {}).values()}
            secret_values |= set(doc.get("stringData", {}).values())
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            text = str(doc.get("data", {}))
            assert not any(value in text for value in secret_values), f"ConfigMap {doc['metadata']['name']}"
        for container in containers(doc):
            for env in container.get("env", []):
                where = f"{doc['metadata']['name']}/{container['name']} env {env['name']}"
                if "value" not in env:
                    continue
                assert env["value"] not in secret_values, where
                if SECRET_NAME.search(env["name"]):
                    # A literal is allowed only when it names a mounted file.
                    assert env["name"].endswith("_FILE") and env["value"].startswith("/"), where
            command = " ".join(container.get("command", []) + container.get("args", []))
            assert not any(value in command for value in secret_values), f"{doc['metadata']['name']} command"
