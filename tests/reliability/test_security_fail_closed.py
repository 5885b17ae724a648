"""SafeRollout fails closed: when the judge is down, errs, times out or cannot decide, the client gets an error
or a withheld trace — never reasoning that no judge passed. Unary and streamed, over real gRPC, with real
generation (the tiny model) and the real judge service.

The failing judge is the judge service's `llm` back end pointed at a small HTTP endpoint in this test that
answers like a broken OpenAI-compatible server would (HTTP 500, no answer in time, or words that are no verdict):
a real model server cannot be made to fail on demand. "Down" is the judge service stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from shared.observability import domain
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, intervention_pb2_grpc
from shared.redis_process import RedisProcess
from tests.reliability.security_fixtures import TOKEN, Services, start_services, wait_until_serving

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
