"""The vendored CRDs (k8s/crds/) are the upstream releases the manifests are validated against: each parses, is
the kind and version its SOURCE.md names, and a validator can be built from it, so no deployment test skips for
want of a schema."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.manifests import CRDS, pytorchjob_validator, trainjob_validator

# File -> (kind, served version): what SOURCE.md documents.
VENDORED = {
    "kubeflow.org_pytorchjobs.yaml": ("PyTorchJob", "v1"),
    "trainer.kubeflow.org_trainjobs.yaml": ("TrainJob", "v1alpha1"),
}


@pytest.mark.parametrize("name", sorted(VENDORED))
def test_each_vendored_crd_is_the_documented_kind_and_version(name: str) -> None:
    crd = yaml.load((CRDS / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    kind, version = VENDORED[name]
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert "openAPIV3Schema" in served[version]["schema"]
    assert f"`{name}`" in (CRDS / "SOURCE.md").read_text()


def test_the_torch_distributed_runtime_names_the_trainer_api() -> None:
    runtime = yaml.safe_load((CRDS / "torch_distributed_runtime.yaml").read_text())
    assert runtime["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert runtime["kind"] == "ClusterTrainingRuntime"
    assert runtime["metadata"]["name"] == "torch-distributed"


def test_the_validators_come_from_the_vendored_crds() -> None:
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {}, "replicas": 2}}
    errors = [error.message for error in pytorchjob_validator().iter_errors(job)]
    assert any("replicas" in message for message in errors), errors
    train_job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {"numProcPerNode": 2}}
    errors = [error.message for error in trainjob_validator().iter_errors(train_job)]
    assert any("numProcPerNode" in message for message in errors), errors
