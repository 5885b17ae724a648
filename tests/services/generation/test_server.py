"""The generation service over real gRPC on loopback with the real SmolLM2 model, and its queue workers on a real
redis-server. Token budgets stay tiny: the point is the contract, not the text."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
import redis

from services.generation.server import build_spec
from shared.config.base import QueueSettings
from shared.generation.backends.base import GenerationBackend
from shared.generation.control import RequestControl
from shared.generation.worker import rollout_handler
from shared.protos.intervene.v1 import common_pb2, generation_pb2, generation_pb2_grpc, queue_pb2
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_REQUESTED,
    ROLLOUT_GENERATED,
    ROLLOUT_REQUESTED,
    Delivery,
    WorkQueue,
)
from shared.rpc.client import connect
from shared.rpc.server import RunningServer, start_server
from tests.fixtures.generation import backend_settings, make_lora, shared_transformers_backend
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

TOKEN = "generation-token"
GREEDY = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=4, max_response_tokens=3)
QUEUE = QueueSettings(block_ms=200, claim_idle_ms=60_000)


@pytest.fixture(scope="module")
def backend() -> GenerationBackend:
    return shared_transformers_backend()


@pytest.fixture(scope="module")
def server(backend: GenerationBackend, redis_process: RedisProcess) -> Iterator[RunningServer]:
    settings = backend_settings(
        "transformers",
        auth_disabled=False,
        auth_token=TOKEN,
        port=0,
        redis_url=redis_process.url,
        consume_queue=True,
        dependency_check_seconds=0.1,
    )
    running = start_server(build_spec(settings, backend, QUEUE), settings)
    yield running
    running.stop(grace=None)


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> generation_pb2_grpc.GenerationServiceStub:
    return generation_pb2_grpc.GenerationServiceStub(connect(server.address, token=TOKEN))


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


def _context(backend: GenerationBackend) -> str:
    return backend.context(common_pb2.Prompt(text="What is the capital of France?"))


def test_generate_separates_reasoning_and_response(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    reply = stub.Generate(
        generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text="What is 2+2?")], n=2, sampling=GREEDY)
    )
    first, second = reply.rollouts
    assert first.id and first.id != second.id
    assert first.context.endswith("<think>\n")
    assert first.reasoning and first.response and "</think>" not in first.reasoning + first.response
    assert (first.reasoning, first.response) == (second.reasoning, second.response)


def test_stream_marks_reasoning_then_response(stub: generation_pb2_grpc.GenerationServiceStub) -> None:
    messages = list(
        stub.GenerateStream(generation_pb2.GenerateStreamRequest(prompt=common_pb2.Prompt(text="Hi"), sampling=GREEDY))
    )
    rollout = messages[-1].rollout
    pieces = messages[:-1]
    segments = [m.segment for m in pieces]
    assert segments == sorted(segments) and set(segments) <= {common_pb2.SEGMENT_REASONING, common_pb2.SEGMENT_RESPONSE}
    reasoning = "".join(m.text for m in pieces if m.segment == common_pb2.SEGMENT_REASONING)
    response = "".join(m.text for m in pieces if m.segment == common_pb2.SEGMENT_RESPONSE)
    assert reasoning.rstrip() == rollout.reasoning.rstrip()
    assert response == rollout.response and rollout.id


def test_continue_shares_the_prefix_and_starts_right_after_it(
    stub: generation_pb2_grpc.GenerationServiceStub, backend: GenerationBackend
) -> None:
    prefix = _context(backend) + "The capital of France is Par"
    branches = [generation_pb2.ContinueBranch(id="a", text=""), generation_pb2.ContinueBranch(id="b", text="is, so")]
    reply = stub.Continue(
        generation_pb2.ContinueRequest(prefix=prefix, branches=branches, n=2, sampling=GREEDY, in_reasoning=True)
    )
    assert [(c.branch_id, c.sample_index) for c in reply.continuations] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert reply.continuations[0].reasoning.startswith("is")
    for index, branch in enumerate(branches):
        alone = stub.Continue(
            generation_pb2.ContinueRequest(prefix=prefix + branch.text, sampling=GREEDY, in_reasoning=True)
        ).continuations[0]
        for sample in reply.continuations[2 * index : 2 * index + 2]:
            assert (sample.reasoning, sample.response) == (alone.reasoning, alone.response)


def test_adapters_and_bad_input_get_status_codes(
    stub: generation_pb2_grpc.GenerationServiceStub, tmp_path: Path
) -> None:
    path = str(make_lora(tmp_path / "lora"))
    loaded = stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name="service-policy-v1", path=path))
    assert loaded.adapter.name == "service-policy-v1"
    assert "service-policy-v1" in [a.name for a in stub.ListAdapters(generation_pb2.ListAdaptersRequest()).adapters]
    code, _ = status_of(
        lambda: stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name="service-policy-v1", path=path))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    prompt = [common_pb2.Prompt(text="Hi")]
    code, message = status_of(lambda: stub.Generate(generation_pb2.GenerateRequest(prompts=prompt, n=500)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("n:") and "16" in message
    code, message = status_of(lambda: stub.Generate(generation_pb2.GenerateRequest(prompts=prompt, adapter="nope-v1")))
    assert code == grpc.StatusCode.NOT_FOUND and "nope-v1" in message
    code, message = status_of(lambda: stub.Continue(generation_pb2.ContinueRequest(prefix="word " * 3000)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("prefix:") and "2048" in message


def test_unload_adapter_frees_the_name_for_requests_but_not_for_reloads(
    stub: generation_pb2_grpc.GenerationServiceStub, tmp_path: Path
) -> None:
    path = str(make_lora(tmp_path / "lora"))
    stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name="service-unload-v1", path=path))
    unloaded = stub.UnloadAdapter(generation_pb2.UnloadAdapterRequest(name="service-unload-v1"))
    assert unloaded.adapter.name == "service-unload-v1" and unloaded.adapter.path == path
    assert "service-unload-v1" not in [a.name for a in stub.ListAdapters(generation_pb2.ListAdaptersRequest()).adapters]
    code, message = status_of(
        lambda: stub.LoadAdapter(generation_pb2.LoadAdapterRequest(name="service-unload-v1", path=path))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and message.startswith("name:") and "unloaded" in message
    code, message = status_of(lambda: stub.UnloadAdapter(generation_pb2.UnloadAdapterRequest(name="service-unload-v1")))
    assert code == grpc.StatusCode.NOT_FOUND and message.startswith("name:")


def _collect(client: redis.Redis, stream: str, count: int, timeout_s: float = 300) -> list:
    queue = WorkQueue(client, stream, settings=QUEUE)
    found: list = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        deliveries = queue.read("test-reader", "reader")
        found.extend(d.message for d in deliveries)
        queue.ack("test-reader", [d.entry_id for d in deliveries])
    return found


def test_queue_worker_answers_rollouts_and_continuations(
    server: RunningServer, backend: GenerationBackend, redis_process: RedisProcess
) -> None:
    client = redis.Redis.from_url(redis_process.url)
    WorkQueue(client, ROLLOUT_REQUESTED, settings=QUEUE).produce_many(
        [
            queue_pb2.RolloutRequested(
                job_id="job-q", rollout_id="r-ok", prompt=common_pb2.Prompt(text="What is 2+2?"), sampling=GREEDY
            ),
            queue_pb2.RolloutRequested(job_id="job-q", rollout_id="r-empty", prompt=common_pb2.Prompt(text="")),
        ]
    )
    parent = common_pb2.Rollout(id="r-parent", context=_context(backend), prompt=common_pb2.Prompt(text="Capital?"))
    kept = "The capital of France is Par"
    WorkQueue(client, CONTINUATION_REQUESTED, settings=QUEUE).produce(
        queue_pb2.ContinuationRequested(
            job_id="job-q",
            parent=parent,
            kept_reasoning=kept,
            round=1,
            branches=[
                queue_pb2.ContinuationBranch(trigger_id="t1", trigger_text="", continuation_id="c1"),
                queue_pb2.ContinuationBranch(trigger_id="t2", trigger_text="is. Wait,", continuation_id="c2"),
            ],
            sampling=GREEDY,
        )
    )
    rollouts = {m.rollout.id: m for m in _collect(client, ROLLOUT_GENERATED, 2)}
    assert set(rollouts) == {"r-ok", "r-empty"}
    assert rollouts["r-ok"].rollout.reasoning and not rollouts["r-ok"].error
    assert rollouts["r-empty"].error.startswith("prompts[0].text:")
    assert rollouts["r-empty"].rollout.finish_reason == "error"
    [generated] = _collect(client, CONTINUATION_GENERATED, 1)
    first, second = generated.continuations
    assert (first.id, first.trigger_id, first.parent_id, first.round) == ("c1", "t1", "r-parent", 1)
    assert first.reasoning.startswith(kept + "is") and first.given_reasoning_chars == len(kept)
    assert second.reasoning.startswith(kept + "is. Wait,")
    assert second.given_reasoning_chars == len(kept + "is. Wait,")


class _CrashingOn:
    """Stands in for an engine that crashes mid-batch (a real one cannot be made to crash on demand): it raises
    whenever a batch holds the poisoned prompt, and otherwise forwards to the real back end."""

    def __init__(self, backend: GenerationBackend, poison: str) -> None:
        self._backend, self._poison = backend, poison

    def generate(self, requests: Sequence[generation_pb2.GenerateRequest], *, control: RequestControl) -> list:
        if any(p.text == self._poison for r in requests for p in r.prompts):
            raise RuntimeError("engine crashed")
        return self._backend.generate(requests, control=control)


def test_a_crash_mid_batch_fails_only_the_affected_entry(backend: GenerationBackend, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    output = WorkQueue(client, ROLLOUT_GENERATED, settings=QUEUE)
    handle = rollout_handler(_CrashingOn(backend, "poison"), output)  # type: ignore[arg-type]
    deliveries = [
        Delivery(
            entry_id=f"1-{i}",
            message=queue_pb2.RolloutRequested(rollout_id=f"r{i}", prompt=prompt, sampling=GREEDY),
            deliveries=1,
        )
        for i, prompt in enumerate([common_pb2.Prompt(text="Hi"), common_pb2.Prompt(text="poison")])
    ]
    failures = handle(deliveries)
    assert set(failures) == {"1-1"}
    [produced] = _collect(client, ROLLOUT_GENERATED, 1, timeout_s=5)
    assert produced.rollout.id == "r0" and not produced.error


def _wait_for(condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.05)


LONG = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=400, max_response_tokens=100)


def test_a_cancelled_stream_leaves_the_batch(
    stub: generation_pb2_grpc.GenerationServiceStub, backend: GenerationBackend
) -> None:
    scheduler = backend.scheduler
    cancelled = scheduler.stats().cancelled
    call = stub.GenerateStream(
        generation_pb2.GenerateStreamRequest(prompt=common_pb2.Prompt(text="Tell me about bread."), sampling=LONG)
    )
    first = next(call)
    assert first.text, "decoding is under way"
    _wait_for(lambda: scheduler.stats().running == 1)
    call.cancel()
    _wait_for(lambda: scheduler.stats().running == 0)
    stats = scheduler.stats()
    assert (stats.cancelled, stats.jobs) == (cancelled + 1, 0), "the row was dropped, not decoded to its budget"


def test_an_expired_deadline_leaves_the_batch(
    stub: generation_pb2_grpc.GenerationServiceStub, backend: GenerationBackend
) -> None:
    scheduler = backend.scheduler
    cancelled = scheduler.stats().cancelled
    request = generation_pb2.ContinueRequest(
        prefix=_context(backend) + "Bread needs",
        branches=[generation_pb2.ContinueBranch(id="a", text=" flour"), generation_pb2.ContinueBranch(id="b")],
        sampling=LONG,
        in_reasoning=True,
    )
    code, _ = status_of(lambda: stub.Continue(request, timeout=1.0))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    _wait_for(lambda: scheduler.stats().cancelled == cancelled + 1)
    assert scheduler.stats().running == 0 and scheduler.stats().jobs == 0


def test_concurrent_calls_decode_together_and_answer_as_alone(
    stub: generation_pb2_grpc.GenerationServiceStub, backend: GenerationBackend
) -> None:
    """The embedded model: greedy outputs of calls batched together equal each call's alone."""
    sampling = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=8, max_response_tokens=4)
    generate = [
        generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text=text)], sampling=sampling)
        for text in ("What is 2+2?", "Name a colour.", "How do plants grow?")
    ]
    branches = [generation_pb2.ContinueBranch(id="a", text=" Wait,"), generation_pb2.ContinueBranch(id="b")]
    proceed = generation_pb2.ContinueRequest(
        prefix=_context(backend) + "The capital of France is", branches=branches, sampling=sampling, in_reasoning=True
    )
    stream = generation_pb2.GenerateStreamRequest(prompt=common_pb2.Prompt(text="Hi"), sampling=sampling)

    def texts(reply) -> list[tuple[str, str]]:
        items = reply.rollouts if hasattr(reply, "rollouts") else reply.continuations
        return [(item.reasoning, item.response) for item in items]

    calls = [lambda r=r: texts(stub.Generate(r)) for r in generate]
    calls.append(lambda: texts(stub.Continue(proceed)))
    calls.append(lambda: [(m.rollout.reasoning, m.rollout.response) for m in stub.GenerateStream(stream)][-1:])
    alone = [call() for call in calls]
    results: list = [None] * len(calls)
    first = len(backend.scheduler.admissions)
    with backend.scheduler.hold():
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, calls[i]())) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        _wait_for(lambda: backend.scheduler.queued() == len(calls), timeout_s=60)
    for thread in threads:
        thread.join()
    assert results == alone
    admitted = list(backend.scheduler.admissions)[first:]
    assert len(admitted) == len(calls) and len({a.step for a in admitted}) == 1, "all joined one batch"
