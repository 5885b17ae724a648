"""Every TrainJob we ship validates against the Kubeflow Trainer v2.3.0 CRD (jsonschema, strict) and fits the
torch-distributed runtime: the k8s/ overlay as `kubectl kustomize` builds it, the chart's (test_chart.py) and
`intervene train submit --api trainjob --dry-run`'s. A broken TrainJob must fail the same check."""

from __future__ import annotations

import copy

import pytest
import yaml
from click.testing import CliRunner

from tests.deploy.manifests import K8S, jsonschema, kustomize, trainjob_container, validate_trainjob
from tools.cli.main import cli

pytest.importorskip("kubernetes", reason="the deploy extra is not installed: pip install '.[deploy]'")


def test_the_kustomize_overlay_builds_a_valid_trainjob_beside_the_checkpoint_claim() -> None:
    docs = kustomize(K8S / "overlays" / "trainjob")
    assert sorted(d["kind"] for d in docs) == ["PersistentVolumeClaim", "TrainJob"]
    (job,) = [d for d in docs if d["kind"] == "TrainJob"]
    validate_trainjob(job)
    assert job["spec"]["trainer"]["numNodes"] == 2
    container = trainjob_container(job)
    assert container["command"] == ["torchrun", "-m", "services.trainer"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INTERVENE_TRAINER_PAIR_STORE"] == "intervene-pairstore:50054"
    assert env["INTERVENE_TRAINER_STRATEGY"] == "fsdp"


@pytest.mark.parametrize(("nodes", "nproc", "gpus"), [(1, 1, None), (3, 8, None), (2, 2, 0)])
def test_train_submit_dry_run_prints_a_valid_trainjob(
    monkeypatch: pytest.MonkeyPatch, nodes: int, nproc: int, gpus: int | None
) -> None:
    monkeypatch.setenv("INTERVENE_TRAINER_BETA", "0.25")
    monkeypatch.setenv("INTERVENE_TRAINER_PAIR_STORE_TOKEN", "local-token-not-for-the-cluster")
    args = ["--api=trainjob", "--dry-run", "--name=dpo-v2", f"--nodes={nodes}", f"--nproc-per-node={nproc}"]
    if gpus is not None:
        args.append(f"--gpus-per-node={gpus}")
    args += ["--release=prod", "--queue=team-a", "--service-account=prod-intervene", "--set=adapter_name=policy-v2"]
    result = CliRunner().invoke(cli, ["train", "submit", *args])
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    validate_trainjob(job)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == nodes
    # GPUs per node default to the process count, which the runtime derives itself; a CPU run sends it.
    assert trainer.get("numProcPerNode") == (nproc if gpus == 0 else None)
    container = trainjob_container(job)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INTERVENE_TRAINER_BETA"] == "0.25" and env["INTERVENE_TRAINER_ADAPTER_NAME"] == "policy-v2"
    assert env["INTERVENE_TRAINER_PAIR_STORE"] == "prod-intervene-pairstore:50054"
    assert "local-token-not-for-the-cluster" not in result.stdout
    assert container["resources"]["limits"].get("nvidia.com/gpu", 0) == (nproc if gpus is None else gpus)
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["template"]["spec"]["template"]["spec"]["serviceAccountName"] == "prod-intervene"
    assert pod["template"]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"


@pytest.mark.parametrize(
    "breakage", ["nproc-auto-string", "unknown-trainer-field", "no-runtime-ref", "patch-without-manager", "bad-name"]
)
def test_the_crd_check_rejects_a_broken_trainjob(breakage: str) -> None:
    (job,) = [d for d in kustomize(K8S / "overlays" / "trainjob") if d["kind"] == "TrainJob"]
    broken = copy.deepcopy(job)
    if breakage == "nproc-auto-string":
        broken["spec"]["trainer"]["numProcPerNode"] = "auto"
    elif breakage == "unknown-trainer-field":
        broken["spec"]["trainer"]["nprocPerNode"] = 8
    elif breakage == "no-runtime-ref":
        del broken["spec"]["runtimeRef"]
    elif breakage == "patch-without-manager":
        del broken["spec"]["runtimePatches"][0]["manager"]
    else:
        broken["metadata"]["name"] = "Trainer_1"
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate_trainjob(broken)


def test_a_patch_of_a_container_the_runtime_lacks_is_refused() -> None:
    """The runtime's training container is `node`: a patch of `pytorch` (the PyTorchJob's name) changes nothing."""
    (job,) = [d for d in kustomize(K8S / "overlays" / "trainjob") if d["kind"] == "TrainJob"]
    broken = copy.deepcopy(job)
    patch = broken["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    patch["template"]["spec"]["template"]["spec"]["containers"][0]["name"] = "pytorch"
    with pytest.raises(AssertionError, match="no 'pytorch'"):
        validate_trainjob(broken)
