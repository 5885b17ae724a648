"""The generation service over real gRPC on loopback with the `openai` back end in chat mode, its queue worker on a
real redis-server. The served reasoning model is tests/fixtures/reasoning_server.py, a stand-in on real HTTP for
`vllm serve --reasoning-parser` (no reasoning model can be served here)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis

from services.generation.server import build_spec
from shared.config.base import QueueSettings
from shared.generation.backends.base import GenerationBackend, create_backend
from shared.protos.intervene.v1 import common_pb2, generation_pb2, generation_pb2_grpc, queue_pb2
from shared.queues import ROLLOUT_GENERATED, ROLLOUT_REQUESTED, WorkQueue
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.fixtures.generation import backend_settings
from tests.fixtures.reasoning_server import ReasoningServer
from tests.fixtures.templates import R1_TEMPLATE, tokenizer_dir
from tools.redis_process import RedisProcess

TOKEN = "generation-token"
PROMPT = common_pb2.Prompt(text="What is 2 + 3?", system="Be brief.")
SAMPLING = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=64, max_response_tokens=32)
REASONING = "Two plus three makes five. That is all."
QUEUE = QueueSettings(block_ms=200, claim_idle_ms=60_000)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReasoningServer]:
    instance = ReasoningServer(tokenizer_dir(tmp_path_factory.mktemp("r1-tokenizer"), R1_TEMPLATE))
    yield instance
    instance.close()


@pytest.fixture(autouse=True)
def fresh(model_server: ReasoningServer) -> None:
    model_server.reset()


@pytest.fixture(scope="module")
def server(model_server: ReasoningServer, redis_process: RedisProcess) -> Iterator[RunningServer]:
    settings = backend_settings(
        "openai",
        tokenizer=str(model_server.tokenizer.name_or_path),
        openai_base_url=model_server.url,
        openai_api="chat",
        openai_max_retries=0,
        auth_disabled=False,
        auth_token=TOKEN,
        port=0,
        redis_url=redis_process.url,
        consume_queue=True,
        dependency_check_seconds=0.1,
    )
    backend: GenerationBackend = create_backend(settings)
    running = start_server(build_spec(settings, backend, QUEUE), settings)
    yield running
    running.stop(grace=None)
    backend.close()


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> generation_pb2_grpc.GenerationServiceStub:
    return generation_pb2_grpc.GenerationServiceStub(connect(server.address, token=TOKEN))


def chat_requests(model_server: ReasoningServer) -> list[dict]:
    return [body for path, body in model_server.requests if path == "/v1/chat/completions"]


def test_generate_gives_the_reasoning_apart_from_the_response(
    stub: generation_pb2_grpc.GenerationServiceStub, model_server: ReasoningServer
) -> None:
    [rollout] = stub.Generate(generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=SAMPLING)).rollouts
    assert (rollout.reasoning, rollout.response, rollout.reasoning_closed) == (REASONING, "It is 5.", True)
    assert rollout.context.endswith("<|im_start|>assistant\n<think>\n") and rollout.id
    assert rollout.reasoning_tokens > 0 and rollout.response_tokens > 0 and rollout.finish_reason == "stop"
    [body] = chat_requests(model_server)
    assert body["stream"], "an RPC's call is streamed, so that a cancelled RPC closes it"


def test_generate_stream_sends_reasoning_then_response(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    messages = list(stub.GenerateStream(generation_pb2.GenerateStreamRequest(prompt=PROMPT, sampling=SAMPLING)))
    rollout = messages[-1].rollout
    pieces = messages[:-1]
    reasoning = "".join(m.text for m in pieces if m.segment == common_pb2.SEGMENT_REASONING)
    response = "".join(m.text for m in pieces if m.segment == common_pb2.SEGMENT_RESPONSE)
    assert len(pieces) > 3 and [m.segment for m in pieces] == sorted(m.segment for m in pieces)
    assert (reasoning, response) == (rollout.reasoning, rollout.response) == (REASONING, "It is 5.")


def test_continue_continues_the_exact_text_on_completions(
    stub: generation_pb2_grpc.GenerationServiceStub, model_server: ReasoningServer
) -> None:
    [rollout] = stub.Generate(generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=SAMPLING)).rollouts
    model_server.requests.clear()
    prefix = rollout.context + "Two plus three"
    branch = generation_pb2.ContinueBranch(id="a", text=" is, wait,")
    request = generation_pb2.ContinueRequest(prefix=prefix, branches=[branch], sampling=SAMPLING, in_reasoning=True)
    [continuation] = stub.Continue(request).continuations
    assert continuation.branch_id == "a" and continuation.reasoning
    assert not chat_requests(model_server)
    path, body = model_server.requests[0]
    assert path == "/v1/completions" and body["prompt"] == prefix + " is, wait,"


@pytest.mark.parametrize(
    ("status", "code"), [(400, grpc.StatusCode.INVALID_ARGUMENT), (503, grpc.StatusCode.UNAVAILABLE)]
)
def test_server_errors_reach_the_client_as_statuses_with_the_servers_message(
    stub: generation_pb2_grpc.GenerationServiceStub, model_server: ReasoningServer, status: int, code
) -> None:
    for call in (
        lambda: stub.Generate(generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=SAMPLING)),
        lambda: list(stub.GenerateStream(generation_pb2.GenerateStreamRequest(prompt=PROMPT, sampling=SAMPLING))),
    ):
        model_server.failures.append((status, "max_tokens is too large for this model"))
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == code
        assert "max_tokens is too large" in error.value.details() and str(status) in error.value.details()


def test_a_server_without_a_reasoning_parser_is_named_in_the_status(
    stub: generation_pb2_grpc.GenerationServiceStub, model_server: ReasoningServer
) -> None:
    model_server.field = None
    with pytest.raises(grpc.RpcError) as error:
        stub.Generate(generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=SAMPLING))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "--reasoning-parser" in error.value.details()


def test_an_expired_deadline_closes_the_chat_call(
    stub: generation_pb2_grpc.GenerationServiceStub, model_server: ReasoningServer
) -> None:
    model_server.script = " ".join(["We think about sums step by step."] * 40)
    model_server.delay_s = 0.02
    long = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=400, max_response_tokens=32)
    with pytest.raises(grpc.RpcError) as error:
        stub.Generate(generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=long), timeout=1.0)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 30
    while model_server.disconnects == 0:
        assert time.monotonic() < deadline, "the model server never saw the call closed"
        time.sleep(0.05)


def test_queued_rollouts_come_from_one_json_answer_each(
    server: RunningServer, model_server: ReasoningServer, redis_process: RedisProcess
) -> None:
    client = redis.Redis.from_url(redis_process.url)
    WorkQueue(client, ROLLOUT_REQUESTED, settings=QUEUE).produce(
        queue_pb2.RolloutRequested(job_id="job-chat", rollout_id="r-chat", prompt=PROMPT, sampling=SAMPLING)
    )
    output = WorkQueue(client, ROLLOUT_GENERATED, settings=QUEUE)
    found = []
    deadline = time.monotonic() + 60
    while not found and time.monotonic() < deadline:
        deliveries = output.read("test-reader", "reader")
        found.extend(d.message for d in deliveries if d.message.rollout.id == "r-chat")
        output.ack("test-reader", [d.entry_id for d in deliveries])
    [generated] = found
    assert not generated.error
    assert (generated.rollout.reasoning, generated.rollout.response) == (REASONING, "It is 5.")
    [body] = chat_requests(model_server)
    assert not body["stream"], "queue work cannot be cancelled: one JSON answer, not an event per token"
