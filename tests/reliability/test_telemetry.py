"""The operator's view of a running local stack: each service's /metrics scraped over HTTP after real calls shows
the standard gRPC series and the domain series, and one bulk job's rollout is one connected trace across the four
service processes, from SubmitPrompts to the pair store, received by a real OTLP/HTTP endpoint on loopback.

The stack is the drills' (real Redis, four processes, the tiny random-weight model, a planted compliance cue that
makes the rollout yield a pair), started once for this module with tracing pointed at the receiver, one metrics
port per service and the smallest job: one prompt, one sample, one trigger.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.judging.steps import split
from shared.protos.intervene.v1 import (
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    intervention_pb2,
    pairstore_pb2,
    pairstore_pb2_grpc,
)
from tests.reliability.drill import PROMPTS, SAMPLING, DrillStack, drill_env, planted_patterns
from tools.redis_process import free_port
from tools.stack import local

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed: pip install '.[tracing]'")
from tests.fixtures.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

SERVICES = ("pairstore", "generation", "judge", "intervention")
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


@dataclass
class TelemetryStack:
    stack: DrillStack
    receiver: OtlpReceiver
    metrics_ports: dict[str, int]
    prompt: str
    job: common_pb2.Job

    def scrape(self, service: str) -> dict[str, list]:
        """Family name -> samples of the service's /metrics, parsed by prometheus_client's text parser."""
        url = f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _cued_prompt(stack: DrillStack) -> tuple[str, str]:
    """A prompt whose greedy rollout has a second step, and that step (the cue to plant)."""
    stub = generation_pb2_grpc.GenerationServiceStub(stack.channel("generation"))
    for text in PROMPTS:
        request = generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text=text)], sampling=SAMPLING)
        [rollout] = stub.Generate(request, timeout=120).rollouts
        steps = split(rollout.reasoning)
        if len(steps) >= 2:
            return text, rollout.reasoning[steps[1][0] : steps[1][1]].strip()
    raise AssertionError("the tiny model wrote no second step for any prompt: no cut, no pair")


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory: pytest.TempPathFactory, tiny_model_folder: Path) -> Iterator[TelemetryStack]:
    folder = tmp_path_factory.mktemp("telemetry-stack")
    receiver = OtlpReceiver().start()
    env = {
        **drill_env(tiny_model_folder),
        "INTERVENE_TRIGGERS_PER_ROLLOUT": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    ports = {name: free_port() for name in SERVICES}
    state = local.up(folder, services=[], env=env, default_ports=False)
    stack = DrillStack(folder, state, env)

    def start(name: str) -> None:
        service_env = {**env, "INTERVENE_METRICS_PORT": str(ports[name])}
        local.start_service(folder, state, name, service_env, timeout_s=300, port=free_port())

    try:
        start("pairstore")
        start("generation")
        prompt, cue = _cued_prompt(stack)
        env["INTERVENE_JUDGE_RULES_PATTERNS"] = str(planted_patterns(folder, [cue]))
        start("judge")
        start("intervention")
        job_id = stack.submit([prompt], "telemetry")
        stack.wait_until(job_id, lambda job: job.state != common_pb2.JOB_STATE_RUNNING, timeout_s=300)
        job = stack.job(job_id)
        assert job is not None and job.state == common_pb2.JOB_STATE_SUCCEEDED and job.pairs_created >= 1, job
        spec = intervention_pb2.SafeRolloutSpec(prompt=common_pb2.Prompt(text=prompt), sampling=SAMPLING)
        stack.intervention.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=120)
        yield TelemetryStack(stack, receiver, ports, prompt, job)
    finally:
        local.down(folder)
        receiver.stop()


def _chain(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    """The span and its ancestors, child first, following parent links as far as they are known."""
    chain = [span]
    while chain[-1].parent_id and chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain


def test_one_bulk_rollout_is_one_trace_from_submit_prompts_to_the_pair_store(telemetry: TelemetryStack) -> None:
    job_id = telemetry.job.id

    def stored_chain() -> tuple[ReceivedSpan | None, list[ReceivedSpan], list[ReceivedSpan]]:
        """The pair store's span of the job's pair, its ancestors as received so far, and every span."""
        spans = telemetry.receiver.spans()
        by_id = {span.span_id: span for span in spans}
        for span in spans:
            if span.name == "pair.created process" and span.attributes.get("intervene.job_id") == job_id:
                return span, _chain(span, by_id), spans
        return None, [], spans

    # Each process exports on its own schedule: wait until the chain reaches a root.
    deadline = time.monotonic() + 30
    stored, chain, spans = stored_chain()
    while (stored is None or chain[-1].parent_id) and time.monotonic() < deadline:
        time.sleep(0.2)
        stored, chain, spans = stored_chain()
    assert stored is not None, "the pair store exported no span for the job's pair"
    assert {span.trace_id for span in chain} == {stored.trace_id}
    assert [(span.service, span.name) for span in reversed(chain)] == [
        ("intervene-intervention", "intervene.v1.InterventionService/SubmitPrompts"),
        ("intervene-intervention", "rollout.requested publish"),
        ("intervene-generation", "rollout.requested process"),
        ("intervene-generation", "rollout.generated publish"),
        ("intervene-judge", "rollout.generated process"),
        ("intervene-judge", "rollout.judged publish"),
        ("intervene-intervention", "rollout.judged process"),
        ("intervene-intervention", "continuation.requested publish"),
        ("intervene-generation", "continuation.requested process"),
        ("intervene-generation", "continuation.generated publish"),
        ("intervene-judge", "continuation.generated process"),
        ("intervene-judge", "continuation.judged publish"),
        ("intervene-intervention", "continuation.judged process"),
        ("intervene-intervention", "pair.created publish"),
        ("intervene-pairstore", "pair.created process"),
    ]
    # The client sent no trace context: SubmitPrompts is the root, and every span of the job is in its trace.
    assert chain[-1].parent_id == ""
    job_spans = [span for span in spans if span.attributes.get("intervene.job_id") == job_id]
    assert {span.trace_id for span in job_spans} == {stored.trace_id}
    rollout = stored.attributes["intervene.rollout_id"]
    assert all(span.attributes.get("intervene.rollout_id") == rollout for span in chain[:-1])
    # The service's log line about the job names the job and the trace (never the prompt).
    log = Path(telemetry.stack.state.services["intervention"].log).read_text()
    (line,) = [line for line in log.splitlines() if f"job_id={job_id}" in line]
    assert f"trace_id={stored.trace_id}" in line and telemetry.prompt not in log


def test_a_safe_rollout_is_one_trace_across_its_rpcs(telemetry: TelemetryStack) -> None:
    name = "intervene.v1.InterventionService/SafeRollout"
    expected = {
        ("intervene-intervention", name),
        ("intervene-generation", "intervene.v1.GenerationService/Generate"),
        ("intervene-judge", "intervene.v1.JudgeService/JudgeSteps"),
        ("intervene-pairstore", "intervene.v1.PairStoreService/PutPairs"),
    }

    def server_spans() -> set[tuple[str, str]]:
        """(service, name) of the SERVER spans whose ancestry reaches the SafeRollout call's span."""
        spans = telemetry.receiver.spans()
        roots = [span for span in spans if span.name == name]
        if not roots:
            return set()
        by_id = {span.span_id: span for span in spans}
        return {
            (span.service, span.name)
            for span in spans
            if span.trace_id == roots[-1].trace_id and span.kind == SERVER and _chain(span, by_id)[-1] is roots[-1]
        }

    deadline = time.monotonic() + 30
    while not expected <= (found := server_spans()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert expected <= found, found


def _value(samples: list, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_each_service_exports_standard_grpc_and_domain_series(telemetry: TelemetryStack) -> None:
    stack = telemetry.stack
    refused = common_pb2.Pair(prompt=common_pb2.Prompt(text="x"))
    with pytest.raises(grpc.RpcError):
        pairstore_pb2_grpc.PairStoreServiceStub(stack.channel("pairstore")).PutPairs(
            pairstore_pb2.PutPairsRequest(pairs=[refused]), timeout=30
        )
    intervention = telemetry.scrape("intervention")
    handled = intervention["grpc_server_handled"]
    assert _value(handled, "grpc_server_handled_total", grpc_method="SubmitPrompts", grpc_code="OK") >= 1
    assert _value(handled, "grpc_server_handled_total", grpc_method="GetJob", grpc_type="UNARY") >= 1
    assert _value(intervention["grpc_server_started"], "grpc_server_started_total", grpc_method="SubmitPrompts") >= 1
    assert _value(intervention["grpc_server_handling_seconds"], "grpc_server_handling_seconds_count") >= 1
    assert _value(intervention["grpc_server_msg_sent"], "grpc_server_msg_sent_total") >= 1
    assert _value(intervention["intervene_interventions"], "intervene_interventions_total", path="bulk") >= 1
    assert _value(intervention["intervene_queue_entries"], "intervene_queue_entries_total", stream="rollout.judged")
    safe_rollouts = intervention["intervene_safe_rollouts"]
    assert _value(safe_rollouts, "intervene_safe_rollouts_total", method="SafeRollout") == 1
    assert _value(intervention["intervene_interventions"], "intervene_interventions_total", path="interactive") >= 1

    generation = telemetry.scrape("generation")
    assert _value(generation["grpc_server_handled"], "grpc_server_handled_total", grpc_method="Generate") >= 1
    generated = generation["intervene_rollouts_generated"]
    assert _value(generated, "intervene_rollouts_generated_total", kind="rollout", path="queue") >= 1
    assert _value(generated, "intervene_rollouts_generated_total", kind="continuation", path="queue") >= 1
    assert _value(generation["intervene_generation_tokens"], "intervene_generation_tokens_total") > 0

    judge = telemetry.scrape("judge")
    assert _value(judge["intervene_judge_traces"], "intervene_judge_traces_total") >= 2
    assert _value(judge["intervene_judge_steps"], "intervene_judge_steps_total") >= 2
    assert _value(judge["intervene_judge_cues"], "intervene_judge_cues_total") >= 1

    pairstore = telemetry.scrape("pairstore")
    assert _value(pairstore["intervene_pairs_stored"], "intervene_pairs_stored_total", result="created") >= 1
    assert _value(pairstore["intervene_pairs_refused"], "intervene_pairs_refused_total", path="rpc") == 1
    bad = _value(pairstore["grpc_server_handled"], "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT")
    assert bad == 1

    # The queue gauges: every stream's lag and dead letters, from the service that consumes it.
    deadline = time.monotonic() + 30
    while True:
        lags = {}
        for service in SERVICES:
            families = telemetry.scrape(service)
            for sample in families.get("intervene_queue_lag_entries", []):
                lags[sample.labels["stream"], sample.labels["group"]] = sample.value
            assert all(s.value == 0 for s in families.get("intervene_queue_dead_letters", [])), service
        if len({stream for stream, _ in lags}) == 7 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {stream for stream, _ in lags} == {
        "rollout.requested",
        "rollout.generated",
        "rollout.judged",
        "continuation.requested",
        "continuation.generated",
        "continuation.judged",
        "pair.created",
    }
