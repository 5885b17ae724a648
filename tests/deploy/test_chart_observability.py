"""The chart's dashboard, alerts and trainer PodMonitor, rendered by the real helm binary: off by default, valid
when on, and every PromQL expression in them names only metrics the services and the trainer register in code."""

from __future__ import annotations

import json
import re

import pytest

from shared.observability import domain
from shared.rpc.metrics import ServiceMetrics
from shared.training.prometheus import TrainerMetrics
from tests.deploy.manifests import CHART, KUBERNETES_VERSIONS, helm, helm_template, validate_builtin

ON = {
    "grafanaDashboard": {"enabled": True, "folder": "Intervene"},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "trainer": {"enabled": True, "podMonitor": {"enabled": True}},
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def _by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for doc in docs:
        found.setdefault(doc["kind"], []).append(doc)
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return _by_kind(helm_template(ON))


def exported_names() -> set[str]:
    """Every series name the code registers: the server's gRPC and queue metrics, the domain metrics, the trainer's."""
    names: set[str] = set()
    for registry in (ServiceMetrics().registry, domain.REGISTRY, TrainerMetrics().registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
            names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers outside strings, label matchers, durations and
    grouping clauses, that are neither functions nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if match.group() in KEYWORDS or following.startswith("(") or text[match.start() - 1 : match.start()] == "$":
            continue
        names.add(match.group())
    return names


def expressions(rendered: dict[str, list[dict]]) -> list[str]:
    (rule,) = rendered["PrometheusRule"]
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    for panel in dashboard(rendered)["panels"]:
        exprs += [target["expr"] for target in panel.get("targets", [])]
    return exprs


def dashboard(rendered: dict[str, list[dict]]) -> dict:
    (config_map,) = [c for c in rendered["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    return json.loads(config_map["data"]["intervene.json"])


def test_dashboard_alerts_and_pod_monitor_are_off_by_default() -> None:
    by_kind = _by_kind(helm_template({"trainer": {"enabled": True}}))
    assert "PrometheusRule" not in by_kind and "PodMonitor" not in by_kind
    assert not [c for c in by_kind["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]


def test_dashboard_is_a_sidecar_configmap_with_the_dashboard_json(rendered: dict[str, list[dict]]) -> None:
    (config_map,) = [c for c in rendered["ConfigMap"] if c["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Intervene"
    for version in KUBERNETES_VERSIONS:
        validate_builtin(config_map, version)
    board = dashboard(rendered)
    assert board["uid"] == "intervene" and {v["name"] for v in board["templating"]["list"]} == {
        "datasource",
        "namespace",
    }
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Server error ratio", "Lag (not yet delivered)", "Dead letters", "SafeRollout fail-closed ratio"} <= titles


def test_prometheus_rule_has_the_four_alerts_scoped_to_the_release_namespace(rendered: dict[str, list[dict]]) -> None:
    (rule,) = rendered["PrometheusRule"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(rules) == {
        "InterveneQueueLagGrowing",
        "InterveneDeadLetters",
        "InterveneGrpcErrorRatio",
        "InterveneSafeRolloutFailClosed",
    }
    for alert in rules.values():
        selectors = re.findall(r"\{([^}]*)\}", alert["expr"])
        assert selectors and all('namespace="intervene"' in s for s in selectors), alert["alert"]
        assert alert["for"] and alert["labels"]["severity"] == "warning"
    assert "> 0.01" in rules["InterveneSafeRolloutFailClosed"]["expr"]


def test_every_promql_expression_names_a_metric_the_code_exports(rendered: dict[str, list[dict]]) -> None:
    known = exported_names()
    assert {"grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "intervene_queue_lag_entries"} <= known
    for expr in expressions(rendered):
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= known, f"{sorted(names - known)} in {expr!r} are not exported by the services"


def test_the_name_parser_finds_metrics_and_skips_functions_labels_and_keywords() -> None:
    expr = 'sum by (le) (rate(a_total{x="b_total"}[5m])) / on (le) max(c) > 0 and histogram_quantile(0.9, d_bucket)'
    assert metric_names(expr) == {"a_total", "c", "d_bucket"}


def test_the_trainer_serves_metrics_and_its_pod_monitor_scrapes_the_master(rendered: dict[str, list[dict]]) -> None:
    (monitor,) = rendered["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"]["training.kubeflow.org/replica-type"] == "master"
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    (job,) = rendered["PyTorchJob"]
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["INTERVENE_TRAINER_METRICS_PORT"] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"prometheusRule": {"enabled": True, "grpcErrors": {"ratio": 2}}}, "ratio"),
        ({"prometheusRule": {"enabled": True, "queueLag": {"window": "soon"}}}, "window"),
        ({"grafanaDashboard": {"enabled": True, "colour": "red"}}, "colour"),
    ],
)
def test_values_schema_refuses_wrong_observability_values(values: dict, field: str) -> None:
    result = helm("template", "demo", str(CHART), values=values, check=False)
    assert result.returncode != 0 and field in result.stderr


def test_tracing_sets_the_otel_variables_of_every_service() -> None:
    tracing = {"tracing": {"enabled": True, "endpoint": "http://otel-collector.monitoring:4318", "samplerArg": "0.25"}}
    deployments = _by_kind(helm_template(tracing))["Deployment"]
    assert len(deployments) == 4
    for deployment in deployments:
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        assert env["OTEL_SERVICE_NAME"] == f"intervene-{component}"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio" and env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    default_env = _by_kind(helm_template({}))["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [e for e in default_env if e["name"].startswith("OTEL_")]


def test_tracing_without_an_endpoint_says_what_to_set() -> None:
    result = helm("template", "demo", str(CHART), values={"tracing": {"enabled": True}}, check=False)
    assert result.returncode != 0 and "tracing.endpoint" in result.stderr
