"""The Helm chart, rendered by the real helm binary: lint, templates valid for Kubernetes 1.29 and 1.33,
the values schema and the chart's own checks refusing wrong values with messages that say what to change."""

from __future__ import annotations

import functools
import json

import pytest

from tests.deploy.manifests import (
    CHART,
    CUSTOM_KINDS,
    KUBERNETES_VERSIONS,
    REPO,
    VALUE_SETS,
    containers,
    helm,
    helm_template,
    validate_builtin,
    validate_pytorchjob,
)


@functools.cache
def rendered(name: str) -> tuple[dict, ...]:
    """Each value set is rendered once per test run."""
    return tuple(helm_template(VALUE_SETS[name]))


def kinds(docs: tuple[dict, ...]) -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_passes_strict(name: str) -> None:
    result = helm("lint", "--strict", str(CHART), values=VALUE_SETS[name])
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_builtin_manifest_is_valid_for_each_kubernetes_version(name: str) -> None:
    docs = rendered(name)
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            validate_builtin(doc, version)


@pytest.mark.parametrize("name", ["no-gpu", "training-multi-node"])
def test_the_charts_pytorchjob_validates_against_the_crd(name: str) -> None:
    (job,) = kinds(rendered(name))["PyTorchJob"]
    validate_pytorchjob(job)
    specs = job["spec"]["pytorchReplicaSpecs"]
    nodes = VALUE_SETS[name]["trainer"].get("nodes", 1)
    assert sum(spec["replicas"] for spec in specs.values()) == nodes
    assert ("Worker" in specs) == (nodes > 1)


def test_defaults_deploy_the_four_services_redis_and_gpu_generation() -> None:
    by_kind = kinds(rendered("default"))
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {"generation", "judge", "intervention", "pairstore"}
    generation = deployments["generation"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in generation["containers"][0]["env"]}
    assert env["INTERVENE_GENERATION_BACKEND"] == "vllm"
    assert generation["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert generation["containers"][0]["image"].endswith("-gpu")
    assert generation["tolerations"][0]["key"] == "nvidia.com/gpu"
    (redis,) = by_kind["StatefulSet"]
    command = redis["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "--appendonly yes" in command and "--appendfsync always" in command
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    # CPU HPAs for the CPU services; GPU generation keeps its replica count (CPU load is no signal there).
    assert {h["spec"]["scaleTargetRef"]["name"] for h in by_kind["HorizontalPodAutoscaler"]} == {
        d["metadata"]["name"] for d in by_kind["Deployment"] if not d["metadata"]["name"].endswith("-generation")
    }
    assert len(by_kind["PodDisruptionBudget"]) == 4
    assert "PyTorchJob" not in by_kind and "ScaledObject" not in by_kind


def test_external_redis_replaces_the_statefulset_and_uses_the_existing_secret() -> None:
    by_kind = kinds(rendered("external-redis"))
    assert "StatefulSet" not in by_kind and "Secret" not in by_kind
    for deployment in by_kind["Deployment"]:
        spec = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["INTERVENE_REDIS_URL"] == "redis://redis.data.svc:6379/0"
        (secret,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
        assert secret["secret"]["secretName"] == "intervene-tokens"


def test_without_gpu_generation_requests_none_and_runs_transformers() -> None:
    docs = rendered("no-gpu")
    for doc in docs:
        for container in containers(doc):
            assert "nvidia.com/gpu" not in str(container["resources"]), f"{doc['metadata']['name']} asks for a GPU"
    (generation,) = [d for d in kinds(docs)["Deployment"] if d["metadata"]["name"].endswith("-generation")]
    env = {e["name"]: e.get("value") for e in generation["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INTERVENE_GENERATION_BACKEND"] == "transformers"
    assert not generation["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-gpu")


def test_keda_scales_every_service_on_its_stream_lag_instead_of_cpu() -> None:
    by_kind = kinds(rendered("keda"))
    assert "HorizontalPodAutoscaler" not in by_kind
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind["ScaledObject"]}
    assert set(scaled) == {d["metadata"]["name"] for d in by_kind["Deployment"]}
    for deployment in by_kind["Deployment"]:
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    triggers = [t for s in scaled.values() for t in s["spec"]["triggers"]]
    assert {t["metadata"]["stream"] for t in triggers} >= {"rollout.requested", "pair.created"}
    for trigger in triggers:
        assert trigger["type"] == "redis-streams"
        assert int(trigger["metadata"]["lagCount"]) > 0
        assert trigger["authenticationRef"]["name"] == by_kind["TriggerAuthentication"][0]["metadata"]["name"]
    (auth,) = by_kind["TriggerAuthentication"]
    assert auth["spec"]["secretTargetRef"][0]["key"] == "redis-password"
    (monitor,) = by_kind["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    # KEDA's operator reads stream lag from Redis: the Redis NetworkPolicy lets its namespace in.
    (redis_policy,) = [p for p in by_kind["NetworkPolicy"] if p["metadata"]["name"].endswith("-redis")]
    peers = redis_policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in peers


def test_network_policies_keep_redis_and_internal_services_inside_the_release() -> None:
    by_kind = kinds(rendered("default"))
    policies = {p["metadata"]["name"].removeprefix("demo-intervene-"): p for p in by_kind["NetworkPolicy"]}
    assert set(policies) == {"generation", "judge", "intervention", "pairstore", "redis"}
    redis_from = policies["redis"]["spec"]["ingress"][0]["from"]
    assert redis_from == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo", "intervene.dev/redis-client": "true"}}}
    ]
    for name in ("generation", "judge", "pairstore"):
        grpc_rule = policies[name]["spec"]["ingress"][0]
        assert grpc_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}}}]
    # Only intervention takes gRPC calls from outside the release.
    assert "from" not in policies["intervention"]["spec"]["ingress"][0]
    # Only the services' pods carry the Redis client label; the helm test pod does not.
    for doc in by_kind["Deployment"]:
        assert doc["spec"]["template"]["metadata"]["labels"]["intervene.dev/redis-client"] == "true"
    (test_pod,) = by_kind["Pod"]
    assert "intervene.dev/redis-client" not in test_pod["metadata"]["labels"]


def test_helm_test_pod_makes_a_safe_rollout_call_with_the_release_token() -> None:
    (pod,) = kinds(rendered("default"))["Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script = container["command"][-1]
    assert "InterventionServiceStub" in script and ".SafeRollout(" in script
    compile(script, "helm-test", "exec")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INTERVENE_INTERVENTION_ADDRESS"] == "demo-intervene-intervention:50053"
    assert env["INTERVENE_TOKEN_FILE"].endswith("/auth-token")


def test_the_trigger_pool_is_in_the_configmap() -> None:
    by_kind = kinds(rendered("default"))
    (config,) = [d for d in by_kind["ConfigMap"] if d["metadata"]["name"].endswith("-config")]
    # The chart ships the service's built-in pool, unchanged.
    built_in = REPO / "shared" / "intervention" / "triggers" / "default-v1.json"
    assert json.loads(config["data"]["triggers.json"]) == json.loads(built_in.read_text())
    (intervention,) = [d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-intervention")]
    env = {e["name"]: e.get("value") for e in intervention["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INTERVENE_TRIGGER_POOL"] == "/etc/intervene/triggers.json"


def test_a_custom_trigger_pool_replaces_the_built_in_one() -> None:
    pool = {"name": "ours", "version": "v3", "triggers": [{"id": "stop", "text": "Wait, I should not help with this."}]}
    docs = helm_template({"config": {"triggerPool": pool}})
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")]
    assert json.loads(config["data"]["triggers.json"]) == pool


def test_the_judge_mounts_the_llm_prompts_and_one_can_be_replaced() -> None:
    shipped = REPO / "shared" / "judging" / "prompts"
    for name in ("detector", "reasoning", "response", "refusal"):
        chart_copy = CHART / "files" / "judge-prompts" / f"{name}.txt"
        assert chart_copy.read_text() == (shipped / f"{name}.txt").read_text(), f"copy {name}.txt into the chart"
    docs = helm_template({"judge": {"backend": "cascade", "llm": {"prompts": {"detector": "Ours {begin} {end}"}}}})
    (prompts,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-judge-prompts")]
    assert prompts["data"]["detector.txt"].strip() == "Ours {begin} {end}"
    assert prompts["data"]["refusal.txt"].strip() == (shipped / "refusal.txt").read_text().strip()
    (judge,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-judge")]
    pod = judge["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["INTERVENE_JUDGE_LLM_PROMPTS_DIR"] == "/etc/intervene-judge-prompts"
    assert "INTERVENE_JUDGE_LLM_BASE_URL" in env, "the cascade's llm judge is configured like the llm back end's"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["judge-prompts"] == "/etc/intervene-judge-prompts"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"judge": {"llm": {"prompts": {"detector": "no markers"}}}}, "at '/judge/llm/prompts/detector'"),
        ({"generation": {"backend": "llama"}}, "at '/generation/backend': value must be one of"),
        ({"judge": {"replicas": -1}}, "at '/judge/replicas': minimum: got -1"),
        ({"redis": {"persistence": {"size": "8GB"}}}, "at '/redis/persistence/size'"),
        ({"trainer": {"nprocPerNode": 4}}, "at '/trainer/nprocPerNode'"),
        ({"pairstore": {"prot": 1}}, "additional properties 'prot' not allowed"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "at '/podSecurityContext/runAsNonRoot'"),
        ({"trainer": {"adapterName": "policy"}}, "at '/trainer/adapterName'"),
        ({"config": {"triggerPool": {"name": "ours", "triggers": []}}}, "at '/config/triggerPool'"),
    ],
)
def test_values_schema_rejects_wrong_values_naming_the_field(values: dict, message: str) -> None:
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"tag": "latest"}}, "image tags must be pinned"),
        ({"redis": {"enabled": False}}, "set redis.external.url="),
        (
            {"redis": {"enabled": False, "external": {"url": "redis://r:6379/0"}}},
            "an external Redis with redis.auth.enabled=true needs its password",
        ),
        ({"generation": {"gpu": {"enabled": False}}}, "generation.backend=vllm needs generation.gpu.enabled=true"),
    ],
)
def test_inconsistent_values_fail_with_what_to_change(values: dict, message: str) -> None:
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_generated_secrets_differ_per_key_and_given_tokens_are_kept() -> None:
    import base64

    docs = helm_template({"auth": {"authToken": "given-token"}})
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["auth-token"] == "given-token"
    assert len(data["read-token"]) == 40 and data["read-token"] != data["redis-password"]


def test_generation_reads_the_trainers_adapters_at_the_trainers_path() -> None:
    by_kind = kinds(rendered("training-multi-node"))
    (claim,) = by_kind["PersistentVolumeClaim"]
    (generation,) = [d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-generation")]
    spec = generation["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "adapters"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"], "readOnly": True}
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "adapters"]
    (job,) = by_kind["PyTorchJob"]
    (trainer,) = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert mount["mountPath"] == env["INTERVENE_TRAINER_OUTPUT_DIR"] and mount["readOnly"] is True


def test_restricting_who_reaches_intervention_keeps_the_release_itself_in() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "ml"}}}
    docs = helm_template({"networkPolicy": {"interventionFrom": [peer]}})
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-intervention")]
    assert policy["spec"]["ingress"][0]["from"] == [
        peer,
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}}},
    ]
