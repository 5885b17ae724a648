"""The `openai` back end over real HTTP against vLLM's OpenAI-compatible server (started from .venv-vllm).

A call whose caller goes away (cancelled, or its deadline passed) closes its streamed completion, and the server
aborts the request: its running-request gauge (`vllm:num_requests_running` on /metrics) falls back to zero.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from shared.generation.backends.base import GenerationBackend, create_backend
from shared.generation.control import Cancelled, RequestControl
from shared.models.embedded import embedded_model_dir
from shared.protos.intervene.v1 import common_pb2, generation_pb2
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
