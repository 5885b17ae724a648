"""The `openai` back end over real HTTP against vLLM's OpenAI-compatible server (started from .venv-vllm).

A call whose caller goes away (cancelled, or its deadline passed) closes its streamed completion, and the server
aborts the request: its running-request gauge (`vllm:num_requests_running` on /metrics) falls back to zero. Chat
mode's requests are checked against the same real server (it runs no reasoning parser: the embedded model has none).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest

from shared.generation.backends.base import GenerationBackend, create_backend
from shared.generation.control import Cancelled, RequestControl
from shared.models.embedded import embedded_model_dir
from shared.protos.intervene.v1 import common_pb2, generation_pb2
from shared.rpc.errors import ServiceError
from tests.fixtures.generation import backend_settings

pytestmark = pytest.mark.slow

# Greedy SmolLM2 keeps counting for hundreds of tokens: a decode that is still running when it is cancelled.
COUNTING = "Numbers: " + ", ".join(str(i) for i in range(1, 21)) + ","
LONG = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=0, max_response_tokens=1500)


@pytest.fixture(scope="module")
def server(vllm_openai_server: str) -> str:
    return vllm_openai_server


@pytest.fixture(scope="module")
def openai_backend(server: str) -> Iterator[GenerationBackend]:
    instance = create_backend(backend_settings("openai", model=str(embedded_model_dir()), openai_base_url=server))
    yield instance
    instance.close()


def _running(server: str) -> float:
    """The server's count of requests it is decoding now."""
    metrics = httpx.get(server.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:num_requests_running")
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _continue_in_thread(backend: GenerationBackend, control: RequestControl) -> tuple[threading.Thread, list]:
    outcome: list = []
    request = generation_pb2.ContinueRequest(prefix=COUNTING, sampling=LONG)

    def call() -> None:
        try:
            outcome.append(backend.continue_branches([request], control=control))
        except Exception as error:  # the test inspects it
            outcome.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


def test_a_cancelled_call_is_aborted_on_the_server(openai_backend: GenerationBackend, server: str) -> None:
    cancelled = threading.Event()
    thread, outcome = _continue_in_thread(openai_backend, RequestControl(is_active=lambda: not cancelled.is_set()))
    _wait_for(lambda: _running(server) >= 1, "the server decodes the request")
    cancelled.set()
    thread.join(timeout=120)
    assert outcome and isinstance(outcome[0], Cancelled)
    _wait_for(lambda: _running(server) == 0, "the server aborted the request")


def test_an_expired_deadline_aborts_the_call_on_the_server(openai_backend: GenerationBackend, server: str) -> None:
    started = threading.Event()
    deadline: list[float] = []

    def is_active() -> bool:
        # What grpc's context.is_active() does once the call's deadline has passed (counted from the first token).
        if not deadline:
            deadline.append(time.monotonic() + 1.0)
            started.set()
        return time.monotonic() < deadline[0]

    thread, outcome = _continue_in_thread(openai_backend, RequestControl(is_active=is_active))
    thread.join(timeout=120)
    assert started.is_set() and outcome and isinstance(outcome[0], Cancelled)
    _wait_for(lambda: _running(server) == 0, "the server aborted the request")


@pytest.fixture(scope="module")
def chat_backends(server: str) -> Iterator[dict[str, GenerationBackend]]:
    """Chat mode against the real server, which runs the embedded model without a reasoning parser."""
    common = {"model": str(embedded_model_dir()), "openai_base_url": server, "openai_api": "chat"}
    made = {
        "raw": create_backend(backend_settings("openai", openai_reasoning_parser=False, **common)),
        "parser": create_backend(backend_settings("openai", openai_max_retries=0, **common)),
    }
    yield made
    for backend in made.values():
        backend.close()


SHORT = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=12, max_response_tokens=4)


def test_chat_mode_requests_are_what_vllm_accepts(chat_backends: dict[str, GenerationBackend]) -> None:
    """Both the JSON answer (queue work) and the event stream (RPCs) are read; SmolLM2 never closes a think block,
    so without a parser all it writes is reasoning, cut by max_tokens."""
    raw = chat_backends["raw"]
    prompt = common_pb2.Prompt(text="Count to twenty.")
    [whole] = raw.generate([generation_pb2.GenerateRequest(prompts=[prompt], sampling=SHORT)])[0].rollouts
    *pieces, last = raw.stream(generation_pb2.GenerateStreamRequest(prompt=prompt, sampling=SHORT))
    for rollout in (whole, last.rollout):
        assert rollout.reasoning and not rollout.reasoning_closed and rollout.finish_reason == "length"
        assert 0 < rollout.reasoning_tokens <= 12 + raw.count_tokens(raw.format.forced_close) + 4
    assert last.rollout.reasoning == whole.reasoning, "greedy: the same text streamed or not"
    assert "".join(p.text for p in pieces if p.segment == common_pb2.SEGMENT_REASONING) == whole.reasoning


def test_a_reasoning_budget_to_a_server_without_a_parser_is_invalid_argument(
    chat_backends: dict[str, GenerationBackend],
) -> None:
    request = generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text="Hi")], sampling=SHORT)
    with pytest.raises(ServiceError) as error:
        chat_backends["parser"].generate([request])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "thinking_token_budget" in error.value.message
