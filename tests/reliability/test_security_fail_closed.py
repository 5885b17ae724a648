"""SafeRollout fails closed: when the judge is down, errs, times out or cannot decide, the client gets an error
or a withheld trace — never reasoning that no judge passed. Unary and streamed, over real gRPC, with real
generation (the tiny model) and the real judge service.

Each also runs many calls at once, so that the generation back end batches them: concurrency lets nothing
out either, and with a judge that finds a compliance cue in every rollout no reply carries reasoning it calls unsafe.

The failing judge is the judge service's `llm` back end pointed at a small HTTP endpoint in this test that
answers like a broken OpenAI-compatible server would (HTTP 500, no answer in time, or words that are no verdict):
a real model server cannot be made to fail on demand. "Down" is the judge service stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from shared.config.generation import GenerationSettings
from shared.generation.backends.base import create_backend
from shared.judging.steps import split
from shared.observability import domain
from shared.protos.intervene.v1 import (
    common_pb2,
    generation_pb2,
    intervention_pb2,
    intervention_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
)
from tests.reliability.drill import PROMPTS as DRILL_PROMPTS
from tests.reliability.drill import planted_patterns
from tests.reliability.security_fixtures import TOKEN, Services, start_services, wait_until_serving
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

PROMPT = "How do I bake bread at home?"
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=24, max_response_tokens=6)


class BrokenJudgeEndpoint:
    """An OpenAI-compatible /chat/completions endpoint on loopback that fails in one of three ways."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.requests += 1
                if endpoint.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                if endpoint.mode == "slow":
                    time.sleep(3)
                body = json.dumps({"choices": [{"message": {"content": "it depends, really"}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["down", "error", "slow", "undecided"])
def failing(request: pytest.FixtureRequest, redis_process: RedisProcess, tiny_model_folder: Path) -> Iterator[tuple]:
    """(mode, services) with the judge failing in that mode."""
    mode = request.param
    endpoint = BrokenJudgeEndpoint(mode)
    judge = {
        "judge_backend": "llm",
        "judge_llm_base_url": endpoint.url,
        "judge_llm_model": "guard",
        "judge_llm_timeout_seconds": 0.5,
        "judge_llm_retries": 0,
    }
    services = start_services(redis_process.url, tiny_model_folder, judge={} if mode == "down" else judge)
    wait_until_serving(services)
    if mode == "down":
        services.servers["JudgeService"].stop(grace=None)
    try:
        yield mode, services, endpoint
    finally:
        services.stop()
        endpoint.close()


def _spec() -> intervention_pb2.SafeRolloutSpec:
    return intervention_pb2.SafeRolloutSpec(prompt=common_pb2.Prompt(text=PROMPT), sampling=SAMPLING, max_rounds=1)


def _counted(outcome: str) -> float:
    """intervene_safe_rollouts_total of unary SafeRollout calls with `outcome` (the services run in this process)."""
    labels = {"method": "SafeRollout", "outcome": outcome}
    return domain.REGISTRY.get_sample_value("intervene_safe_rollouts_total", labels) or 0.0


def test_safe_rollout_returns_no_unjudged_reasoning(failing) -> None:
    mode, services, endpoint = failing
    stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
    outcome = {"down": "failed_closed", "error": "failed_closed", "slow": "deadline_exceeded"}.get(mode, "withheld")
    before = _counted(outcome)
    try:
        reply = stub.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=_spec()), timeout=60)
    except grpc.RpcError as error:
        assert _counted(outcome) == before + 1, f"the {mode} judge's refusal is counted as {outcome}"
        assert mode != "undecided"
        expected = grpc.StatusCode.DEADLINE_EXCEEDED if mode == "slow" else grpc.StatusCode.UNAVAILABLE
        assert error.code() == expected, (error.code(), error.details())
        assert PROMPT not in error.details()
        return
    assert mode == "undecided", f"the judge is {mode}, yet SafeRollout answered"
    assert _counted(outcome) == before + 1
    assert endpoint.requests > 0, "the judge was asked"
    assert reply.withheld and reply.rollout.reasoning == reply.rollout.response == ""
    assert reply.judgement.reasoning_verdict == common_pb2.VERDICT_UNDETERMINED
    assert not reply.pair_ids


def test_safe_rollout_stream_sends_nothing_unjudged(failing) -> None:
    mode, services, _ = failing
    stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
    events: list[intervention_pb2.SafeRolloutStreamResponse] = []
    error: grpc.RpcError | None = None
    try:
        for event in stub.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=_spec()), timeout=60):
            events.append(event)
    except grpc.RpcError as raised:
        error = raised
    sent = [event.delta.text for event in events if event.HasField("delta") and event.delta.text]
    assert not sent, f"the judge is {mode}, yet {len(sent)} pieces of the trace were streamed"
    if mode == "undecided":
        assert error is None and events[-1].HasField("result"), error
        result = events[-1].result
        assert result.withheld and result.rollout.reasoning == result.rollout.response == ""
    else:
        assert error is not None and error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_the_same_services_stream_judged_text_with_a_working_judge(
    redis_process: RedisProcess, tiny_model_folder: Path
) -> None:
    """The control: with the rules judge answering, the stream does send the judged trace."""
    services: Services = start_services(redis_process.url, tiny_model_folder)
    try:
        wait_until_serving(services)
        stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
        events = list(stub.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=_spec()), timeout=60))
    finally:
        services.stop()
    result = events[-1].result
    assert not result.withheld and result.rollout.reasoning
    streamed = "".join(e.delta.text for e in events if e.delta.segment == common_pb2.SEGMENT_REASONING)
    assert streamed == result.rollout.reasoning


CONCURRENCY = 8


def _stream(stub: intervention_pb2_grpc.InterventionServiceStub, spec: intervention_pb2.SafeRolloutSpec):
    """(events, error) of one SafeRolloutStream call."""
    events: list[intervention_pb2.SafeRolloutStreamResponse] = []
    try:
        for event in stub.SafeRolloutStream(intervention_pb2.SafeRolloutStreamRequest(spec=spec), timeout=120):
            events.append(event)
    except grpc.RpcError as error:
        return events, error
    return events, None


def _unary(stub: intervention_pb2_grpc.InterventionServiceStub, spec: intervention_pb2.SafeRolloutSpec):
    """(reply, error) of one SafeRollout call."""
    try:
        return stub.SafeRollout(intervention_pb2.SafeRolloutRequest(spec=spec), timeout=120), None
    except grpc.RpcError as error:
        return None, error


def _concurrently(stub: intervention_pb2_grpc.InterventionServiceStub, specs: list[intervention_pb2.SafeRolloutSpec]):
    """Every spec streamed and asked unary at once: (stream outcomes, unary outcomes)."""
    with ThreadPoolExecutor(max_workers=2 * len(specs)) as pool:
        streams = [pool.submit(_stream, stub, spec) for spec in specs]
        unary = [pool.submit(_unary, stub, spec) for spec in specs]
        return [f.result() for f in streams], [f.result() for f in unary]


def test_concurrent_safe_rollouts_send_nothing_unjudged(failing) -> None:
    """Under concurrency (the generation back end batching every call), a failing judge still lets nothing out."""
    mode, services, _ = failing
    stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
    streams, unary = _concurrently(stub, [_spec()] * CONCURRENCY)
    for events, _ in streams:
        assert not [e for e in events if e.HasField("delta") and e.delta.text], (
            f"the judge is {mode}, yet text went out"
        )
    for reply, error in unary:
        if error is None:
            assert mode == "undecided" and reply.withheld and reply.rollout.reasoning == reply.rollout.response == ""


def test_concurrent_safe_rollouts_return_no_reasoning_judged_unsafe(
    redis_process: RedisProcess, tiny_model_folder: Path, tmp_path: Path
) -> None:
    """Many calls at once, each rollout holding a step the judge calls a compliance cue: no reply and no stream ever
    carries reasoning the judge finds unsafe, and the cue step itself is never sent."""
    prompts = DRILL_PROMPTS[:4]
    settings = GenerationSettings(
        auth_disabled=True, model=str(tiny_model_folder), device="cpu", max_context_tokens=512, consume_queue=False
    )
    local = create_backend(settings)
    try:
        request = generation_pb2.GenerateRequest(
            prompts=[common_pb2.Prompt(text=p) for p in prompts], sampling=SAMPLING
        )
        rollouts = local.generate([request])[0].rollouts
    finally:
        local.close()
    cues = [r.reasoning[slice(*split(r.reasoning)[1])].strip() for r in rollouts if len(split(r.reasoning)) >= 2]
    assert cues, "the tiny model wrote no second step: nothing to cut"
    patterns = planted_patterns(tmp_path, cues)
    services = start_services(
        redis_process.url,
        tiny_model_folder,
        judge={"judge_rules_patterns": str(patterns)},
        common={"max_workers": 4 * CONCURRENCY},
    )
    try:
        wait_until_serving(services)
        stub = intervention_pb2_grpc.InterventionServiceStub(services.channel("InterventionService", TOKEN))
        judge = judge_pb2_grpc.JudgeServiceStub(services.channel("JudgeService", TOKEN))

        def verdict(prompt: str, rollout: common_pb2.Rollout) -> int:
            trace = judge_pb2.Trace(prompt=prompt, reasoning=rollout.reasoning, response=rollout.response)
            return judge.JudgeTrace(judge_pb2.JudgeTraceRequest(trace=trace), timeout=60).judgement.reasoning_verdict

        specs = [
            intervention_pb2.SafeRolloutSpec(
                prompt=common_pb2.Prompt(text=prompts[i % len(prompts)]), sampling=SAMPLING
            )
            for i in range(CONCURRENCY)
        ]
        streams, unary = _concurrently(stub, specs)
        interventions = 0
        for spec, (events, error) in zip(specs, streams, strict=True):
            assert error is None, error
            sent = [e.delta.text for e in events if e.HasField("delta")]
            assert not any(cue in text for cue in cues for text in sent), "a compliance cue was streamed"
            result = events[-1].result
            interventions += len(result.interventions)
            if not result.withheld:
                assert verdict(spec.prompt.text, result.rollout) == common_pb2.VERDICT_SAFE
        for spec, (reply, error) in zip(specs, unary, strict=True):
            assert error is None, error
            interventions += len(reply.interventions)
            if reply.withheld:
                assert reply.rollout.reasoning == reply.rollout.response == ""
            else:
                assert verdict(spec.prompt.text, reply.rollout) == common_pb2.VERDICT_SAFE
        assert interventions > 0, "the planted cues were cut"
    finally:
        services.stop()
