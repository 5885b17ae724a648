"""What a real cluster needs of the chart, rendered by the real helm binary: gRPC balanced over replicas through
headless Services, probes that tell liveness from readiness, a ServiceAccount, generation not scaled on CPU load,
a training job that `helm upgrade` does not re-run (PyTorchJob or TrainJob), a data PVC and HF_TOKEN from a
Secret; and the values schema refusing bad values of each."""

from __future__ import annotations

import functools

import pytest

from tests.deploy.manifests import CHART, VALUE_SETS, containers, helm, helm_template, pod_specs, validate_trainjob


@functools.cache
def rendered(name: str) -> tuple[dict, ...]:
    return tuple(helm_template(VALUE_SETS[name]))


def by_kind(docs: tuple[dict, ...] | list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def deployment(docs: tuple[dict, ...] | list[dict], component: str) -> dict:
    (found,) = [d for d in by_kind(docs)["Deployment"] if d["metadata"]["name"].endswith(f"-{component}")]
    return found


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_every_service_has_a_headless_twin_and_peers_dial_it_round_robin() -> None:
    docs = rendered("default")
    services = {s["metadata"]["name"]: s for s in by_kind(docs)["Service"]}
    for component in ("generation", "judge", "intervention", "pairstore"):
        headless = services[f"demo-intervene-{component}-headless"]
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["selector"] == services[f"demo-intervene-{component}"]["spec"]["selector"]
        # gRPC only: the metrics port stays on the ClusterIP Service, so a ServiceMonitor scrapes each pod once.
        assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
        assert "clusterIP" not in services[f"demo-intervene-{component}"]["spec"]
    env = env_of(deployment(docs, "intervention")["spec"]["template"]["spec"]["containers"][0])
    assert env["INTERVENE_GENERATION_ADDRESS"]["value"] == "dns:///demo-intervene-generation-headless:50051"
    assert env["INTERVENE_JUDGE_ADDRESS"]["value"] == "dns:///demo-intervene-judge-headless:50052"
    assert env["INTERVENE_PAIRSTORE_ADDRESS"]["value"] == "dns:///demo-intervene-pairstore-headless:50054"


def test_without_headless_services_peers_dial_the_cluster_ips() -> None:
    docs = helm_template({"loadBalancing": {"headless": False}})
    assert not [s for s in by_kind(docs)["Service"] if s["metadata"]["name"].endswith("-headless")]
    env = env_of(deployment(docs, "intervention")["spec"]["template"]["spec"]["containers"][0])
    assert env["INTERVENE_JUDGE_ADDRESS"]["value"] == "demo-intervene-judge:50052"


def test_liveness_asks_the_liveness_name_and_readiness_the_whole_server() -> None:
    for component in ("generation", "judge", "intervention", "pairstore"):
        (container,) = deployment(rendered("default"), component)["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"
        assert "service" not in container["readinessProbe"]["grpc"]


def test_the_chart_creates_a_tokenless_service_account_every_pod_runs_as() -> None:
    docs = rendered("trainjob")
    (account,) = by_kind(docs)["ServiceAccount"]
    assert account["metadata"]["name"] == "demo-intervene"
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"] == VALUE_SETS["trainjob"]["serviceAccount"]["annotations"]
    for doc in docs:
        if doc["kind"] in {"Deployment", "TrainJob", "Pod"}:
            for spec in pod_specs(doc):
                assert spec["serviceAccountName"] == "demo-intervene", doc["metadata"]["name"]


@pytest.mark.parametrize(("account", "expected"), [({"name": "ml-runner"}, "ml-runner"), ({}, "default")])
def test_an_existing_service_account_is_used_and_not_created(account: dict, expected: str) -> None:
    docs = helm_template({"serviceAccount": {"create": False, **account}})
    assert "ServiceAccount" not in by_kind(docs)
    for doc in by_kind(docs)["Deployment"]:
        assert doc["spec"]["template"]["spec"]["serviceAccountName"] == expected


def test_gpu_generation_is_not_scaled_on_cpu_and_keda_can_scale_it_on_its_queues() -> None:
    default = by_kind(rendered("default"))
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in default["HorizontalPodAutoscaler"]}
    assert "demo-intervene-generation" not in hpa_targets
    assert deployment(rendered("default"), "generation")["spec"]["replicas"] == 1

    kinds = by_kind(rendered("trainjob"))
    (scaled,) = kinds["ScaledObject"]  # generation alone: keda.enabled (every service) stays off
    assert scaled["spec"]["scaleTargetRef"]["name"] == "demo-intervene-generation"
    assert {t["metadata"]["stream"] for t in scaled["spec"]["triggers"]} == {
        "rollout.requested",
        "continuation.requested",
    }
    assert {t["metadata"]["consumerGroup"] for t in scaled["spec"]["triggers"]} == {"generation"}
    assert "replicas" not in deployment(rendered("trainjob"), "generation")["spec"], "KEDA owns the replica count"
    assert kinds["TriggerAuthentication"]
    (redis_policy,) = [p for p in kinds["NetworkPolicy"] if p["metadata"]["name"].endswith("-redis")]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in redis_policy["spec"][
        "ingress"
    ][0]["from"]


@pytest.mark.parametrize("api", ["pytorchjob", "trainjob"])
def test_the_training_job_is_an_install_hook_named_after_its_adapter(api: str) -> None:
    """`helm upgrade` runs no post-install hook: an upgrade never re-creates the job, so it never trains again."""
    values = {"trainer": {"enabled": True, "api": api, "adapterName": "policy-v7", "queue": "team-a"}}
    docs = helm_template(values)
    kinds = by_kind(docs)
    (job,) = kinds["TrainJob" if api == "trainjob" else "PyTorchJob"]
    assert "PyTorchJob" not in kinds if api == "trainjob" else "TrainJob" not in kinds
    assert job["metadata"]["name"] == "demo-intervene-trainer-policy-v7"
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    # The checkpoints are a regular resource, kept by `helm uninstall`.
    (claim,) = kinds["PersistentVolumeClaim"]
    assert "helm.sh/hook" not in claim["metadata"].get("annotations", {})
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_charts_trainjob_validates_against_the_v2_crd_and_runs_the_same_trainer() -> None:
    kinds = by_kind(rendered("trainjob"))
    (job,) = kinds["TrainJob"]
    validate_trainjob(job)
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["command"] == ["torchrun", "-m", "services.trainer"]
    # Four processes on four GPUs: the runtime derives it; nothing is sent.
    assert "numProcPerNode" not in trainer
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 4
    env = env_of({"env": trainer["env"]})
    assert env["INTERVENE_TRAINER_PAIR_STORE"]["value"] == "demo-intervene-pairstore:50054"
    (container,) = containers(job)
    assert container["name"] == "node" and container["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_cpu_trainjob_sends_its_process_count_and_cpu_is_refused() -> None:
    values = {"trainer": {"enabled": True, "api": "trainjob", "gpu": {"enabled": False}, "nprocPerNode": "2"}}
    (job,) = by_kind(helm_template(values))["TrainJob"]
    validate_trainjob(job)
    assert job["spec"]["trainer"]["numProcPerNode"] == 2
    values["trainer"]["nprocPerNode"] = "cpu"
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert (
        result.returncode != 0
        and "trainer.api=trainjob takes trainer.nprocPerNode auto, gpu or a number" in result.stderr
    )


def test_the_data_claim_is_mounted_read_only_where_data_sets_are_read() -> None:
    docs = rendered("trainjob")
    for component, mounted in (("intervention", True), ("generation", False), ("judge", False), ("pairstore", False)):
        spec = deployment(docs, component)["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert ("data" in volumes) is mounted, component
        if mounted:
            assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "intervene-datasets", "readOnly": True}
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "data"]
            assert mount == {"name": "data", "mountPath": "/data", "readOnly": True}
            assert env_of(container)["INTERVENE_DATA_DIR"]["value"] == "/data"
    (job,) = by_kind(docs)["TrainJob"]
    (container,) = containers(job)
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
    assert env_of(container)["INTERVENE_DATA_DIR"]["value"] == "/data"


def test_hf_token_comes_from_the_existing_secret_in_generation_and_the_trainer_only() -> None:
    docs = rendered("trainjob")
    reference = {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    (generation,) = deployment(docs, "generation")["spec"]["template"]["spec"]["containers"]
    assert env_of(generation)["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": reference}
    (job,) = by_kind(docs)["TrainJob"]
    assert env_of(containers(job)[0])["HF_TOKEN"]["valueFrom"] == reference
    (judge,) = deployment(docs, "judge")["spec"]["template"]["spec"]["containers"]
    assert "HF_TOKEN" not in env_of(judge)
    assert "HF_TOKEN" not in env_of(
        deployment(rendered("default"), "generation")["spec"]["template"]["spec"]["containers"][0]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"serviceAccount": {"create": "yes"}}, "at '/serviceAccount/create'"),
        ({"serviceAccount": {"name": "Intervene_SA"}}, "at '/serviceAccount/name'"),
        ({"serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": 1}}}, "at '/serviceAccount/annotations"),
        ({"serviceAccount": {"role": "x"}}, "additional properties 'role' not allowed"),
        ({"loadBalancing": {"headless": "true"}}, "at '/loadBalancing/headless'"),
        ({"data": {"existingClaim": "My Data"}}, "at '/data/existingClaim'"),
        ({"data": {"mountPath": "data"}}, "at '/data/mountPath'"),
        ({"huggingface": {"tokenSecret": {"name": "hf", "key": ""}}}, "at '/huggingface/tokenSecret/key'"),
        ({"huggingface": {"tokenSecret": {"name": "HF Token"}}}, "at '/huggingface/tokenSecret/name'"),
        ({"generation": {"keda": {"enabled": "on"}}}, "at '/generation/keda/enabled'"),
        ({"trainer": {"api": "v2"}}, "at '/trainer/api': value must be one of"),
        ({"trainer": {"queue": "Team A"}}, "at '/trainer/queue'"),
        ({"trainer": {"trainjob": {"runtime": ""}}}, "at '/trainer/trainjob/runtime'"),
    ],
)
def test_the_schema_refuses_bad_new_values_naming_the_field(values: dict, message: str) -> None:
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"generation": {"autoscaling": {"enabled": True}}},
            "generation.autoscaling.enabled scales GPU generation on CPU load",
        ),
        (
            {"trainer": {"enabled": True, "adapterName": "policy-with-a-very-long-name-v1"}},
            "is longer than 40 characters (pod names add to it): shorten trainer.adapterName",
        ),
    ],
)
def test_inconsistent_new_values_fail_with_what_to_change(values: dict, message: str) -> None:
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_cpu_generation_may_still_scale_on_cpu() -> None:
    no_gpu = VALUE_SETS["no-gpu"]["generation"]
    docs = helm_template(
        {"generation": {**no_gpu, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}}}
    )
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(docs)["HorizontalPodAutoscaler"]}
    assert "demo-intervene-generation" in targets
