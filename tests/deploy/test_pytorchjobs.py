"""Every PyTorchJob we ship validates against the training operator v1.9.4 CRD (jsonschema, strict):
the k8s/ overlays as `kubectl kustomize` builds them, the chart's (test_chart.py) and `intervene train
submit --dry-run`'s. A broken job must fail the same check, or the check proves nothing."""

from __future__ import annotations

import copy

import pytest
import yaml
from click.testing import CliRunner

from tests.deploy.manifests import (
    K8S,
    KUBERNETES_VERSIONS,
    jsonschema,
    kustomize,
    validate_builtin,
    validate_pytorchjob,
)
from tools.cli.main import cli

pytest.importorskip("kubeflow.training", reason="the deploy extra is not installed: pip install '.[deploy]'")


@pytest.mark.parametrize(("overlay", "nodes", "nproc"), [("single-node", 1, "4"), ("multi-node", 2, "8")])
def test_kustomize_overlays_build_valid_jobs(overlay: str, nodes: int, nproc: str) -> None:
    docs = kustomize(K8S / "overlays" / overlay)
    (job,) = [d for d in docs if d["kind"] == "PyTorchJob"]
    validate_pytorchjob(job)
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert sum(s["replicas"] for s in specs.values()) == nodes
    assert job["spec"]["nprocPerNode"] == nproc
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
    for spec in specs.values():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["torchrun", "-m", "services.trainer"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == int(nproc)
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["INTERVENE_TRAINER_PAIR_STORE"] == "intervene-pairstore:50054"
        assert spec["restartPolicy"] == "OnFailure"
    (claim,) = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    for version in KUBERNETES_VERSIONS:
        validate_builtin(claim, version)
    assert claim["spec"]["accessModes"] == (["ReadWriteOnce"] if nodes == 1 else ["ReadWriteMany"])


@pytest.mark.parametrize(("nodes", "nproc"), [(1, 1), (3, 8)])
def test_train_submit_dry_run_prints_a_valid_job(monkeypatch: pytest.MonkeyPatch, nodes: int, nproc: int) -> None:
    monkeypatch.setenv("INTERVENE_TRAINER_BETA", "0.25")
    monkeypatch.setenv("INTERVENE_TRAINER_PAIR_STORE_TOKEN", "local-token-not-for-the-cluster")
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "submit",
            "--dry-run",
            "--name=dpo-v2",
            f"--nodes={nodes}",
            f"--nproc-per-node={nproc}",
            "--release=prod",
            "--set=adapter_name=policy-v2",
            '--set=lora_targets=["q_proj","v_proj"]',
            "--queue=team-a",
        ],
    )
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    validate_pytorchjob(job)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1
    assert specs.get("Worker", {}).get("replicas", 0) == nodes - 1
    container = specs["Master"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # The user's settings travel as the trainer's own variables; the cluster's come from the release.
    assert env["INTERVENE_TRAINER_BETA"] == "0.25"
    assert env["INTERVENE_TRAINER_ADAPTER_NAME"] == "policy-v2"
    assert env["INTERVENE_TRAINER_LORA_TARGETS"] == '["q_proj", "v_proj"]'
    assert env["INTERVENE_TRAINER_PAIR_STORE"] == "prod-intervene-pairstore:50054"
    assert "local-token-not-for-the-cluster" not in result.stdout
    assert container["resources"]["limits"]["nvidia.com/gpu"] == nproc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set=bta=0.2"], "'bta' is not a trainer setting"),
        (["--set=adapter_name=policy"], "adapter_name"),
        (["--name=Bad_Name"], "job name 'Bad_Name' is invalid"),
        (["--set=beta"], "expected FIELD=VALUE"),
    ],
)
def test_train_submit_refuses_bad_settings_with_what_to_change(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["train", "submit", "--dry-run", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_the_crd_check_rejects_a_broken_job() -> None:
    (job,) = [d for d in kustomize(K8S / "overlays" / "single-node") if d["kind"] == "PyTorchJob"]
    for breakage in ("nproc-int", "unknown-field", "no-replica-specs"):
        broken = copy.deepcopy(job)
        if breakage == "nproc-int":
            broken["spec"]["nprocPerNode"] = 4
        elif breakage == "unknown-field":
            broken["spec"]["pytorchReplicaSpecs"]["Master"]["replica"] = 1
        else:
            del broken["spec"]["pytorchReplicaSpecs"]
        with pytest.raises(jsonschema.ValidationError):
            validate_pytorchjob(broken)
