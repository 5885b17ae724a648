"""The `openai` back end in chat mode, over real HTTP against a stand-in for a served reasoning model.

No reasoning model can be served here, so tests/fixtures/reasoning_server.py stands in for `vllm serve
--reasoning-parser`: real HTTP on loopback, vLLM's answer shapes, the real tokenizer's token counts. Its model
writes the same script on /v1/completions as on /v1/chat/completions, so a chat-mode rollout can be compared with
the completions path's for the same model (one whose template opens `<think>`, like an R1 distill's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from shared.generation.backends.base import GenerationBackend, create_backend
from shared.generation.control import Cancelled, RequestControl
from shared.protos.intervene.v1 import common_pb2, generation_pb2
from shared.rpc.errors import ServiceError
from tests.fixtures.generation import backend_settings
from tests.fixtures.reasoning_server import BOTH, MODEL, ReasoningServer
from tests.fixtures.templates import R1_TEMPLATE, tokenizer_dir

PROMPT = common_pb2.Prompt(text="What is 2 + 3?", system="Be brief.")
REASONING = "Two plus three makes five. That is all."
CLOSES = REASONING + "\n</think>\n\nIt is 5."
NEVER_CLOSES = "We think about sums and never close the block."
LONG = " ".join(["We think about sums step by step."] * 40)


def sampling(reasoning: int = 64, response: int = 32, **fields: object) -> common_pb2.SamplingParams:
    return common_pb2.SamplingParams(
        temperature=0.0, max_reasoning_tokens=reasoning, max_response_tokens=response, **fields
    )


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tokenizer_dir(tmp_path_factory.mktemp("r1-tokenizer"), R1_TEMPLATE)


@pytest.fixture(scope="module")
def server(tokenizer_folder: Path) -> Iterator[ReasoningServer]:
    instance = ReasoningServer(tokenizer_folder)
    yield instance
    instance.close()


@pytest.fixture(autouse=True)
def fresh(server: ReasoningServer) -> None:
    server.reset()


def _backend(folder: Path, url: str, **overrides: object) -> GenerationBackend:
    values: dict[str, object] = {
        "tokenizer": str(folder),
        "openai_base_url": url,
        "openai_api": "chat",
        "openai_max_retries": 1,
        "openai_backoff_s": 0.0,
    }
    values.update(overrides)
    return create_backend(backend_settings("openai", **values))


@pytest.fixture(scope="module")
def backends(tokenizer_folder: Path, server: ReasoningServer) -> Iterator[dict[str, GenerationBackend]]:
    made = {
        "chat": _backend(tokenizer_folder, server.url),
        "completions": _backend(tokenizer_folder, server.url, openai_api="completions"),
        "raw": _backend(tokenizer_folder, server.url, openai_reasoning_parser=False),
    }
    yield made
    for backend in made.values():
        backend.close()


def generate(backend: GenerationBackend, params: common_pb2.SamplingParams, **kw: object) -> common_pb2.Rollout:
    """One rollout through Generate; no control that can end: the chat call is not streamed."""
    request = generation_pb2.GenerateRequest(prompts=[PROMPT], sampling=params)
    return backend.generate([request], **kw)[0].rollouts[0]  # type: ignore[arg-type]


def stream(backend: GenerationBackend, params: common_pb2.SamplingParams) -> tuple[list, common_pb2.Rollout]:
    """The text pieces and the rollout of GenerateStream (its caller can go away: the chat call is streamed)."""
    messages = list(backend.stream(generation_pb2.GenerateStreamRequest(prompt=PROMPT, sampling=params)))
    return messages[:-1], messages[-1].rollout


def rollout_of(how: str, backend: GenerationBackend, params: common_pb2.SamplingParams) -> common_pb2.Rollout:
    return generate(backend, params) if how == "message" else stream(backend, params)[1]


def fields(rollout: common_pb2.Rollout) -> tuple:
    return (
        rollout.context,
        rollout.reasoning,
        rollout.response,
        rollout.reasoning_closed,
        rollout.reasoning_tokens,
        rollout.finish_reason,
    )


def chat_requests(server: ReasoningServer) -> list[dict]:
    return [body for path, body in server.requests if path == "/v1/chat/completions"]


@pytest.mark.parametrize("how", ["message", "stream"])
@pytest.mark.parametrize(
    ("script", "params"),
    [
        pytest.param(CLOSES, sampling(), id="the-model-closes"),
        pytest.param(CLOSES, sampling(reasoning=4), id="the-budget-closes"),
        pytest.param(NEVER_CLOSES, sampling(), id="the-turn-ends-inside-reasoning"),
    ],
)
def test_a_chat_rollout_is_the_completions_paths_rollout(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str, script: str, params
) -> None:
    server.script = script
    expected = generate(backends["completions"], params)
    assert not chat_requests(server), "the completions path never calls the chat API"
    server.requests.clear()
    rollout = rollout_of(how, backends["chat"], params)
    assert fields(rollout) == fields(expected)
    assert "<think>" not in rollout.reasoning and "</think>" not in rollout.response
    [body] = chat_requests(server)
    assert body["stream"] is (how == "stream") and len(server.requests) == 1


def test_the_reasoning_token_count_is_the_servers(backends: dict[str, GenerationBackend]) -> None:
    count = backends["chat"].count_tokens
    rollout = generate(backends["chat"], sampling())
    assert rollout.reasoning_tokens == count(REASONING + "\n")
    # The response's count is everything the server generated after the reasoning (its close tag included).
    assert rollout.response_tokens == count("</think>") + count("\n\nIt is 5.")
    assert rollout.reasoning_closed and rollout.response == "It is 5." and rollout.finish_reason == "stop"
    forced = generate(backends["chat"], sampling(reasoning=4))
    assert forced.reasoning_tokens == 4 and not forced.reasoning_closed and forced.response == "It is 5."


@pytest.mark.parametrize("how", ["message", "stream"])
@pytest.mark.parametrize("field", ["reasoning", "reasoning_content", BOTH])
def test_either_field_name_is_read_and_reasoning_is_preferred(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str, field: str
) -> None:
    server.field = field
    rollout = rollout_of(how, backends["chat"], sampling())
    assert (rollout.reasoning, rollout.response, rollout.reasoning_closed) == (REASONING, "It is 5.", True)


@pytest.mark.parametrize("mode", ["chat", "raw"])
def test_streamed_pieces_join_to_exactly_the_rollout(
    backends: dict[str, GenerationBackend], server: ReasoningServer, mode: str
) -> None:
    if mode == "raw":
        server.field = None
    pieces, rollout = stream(backends[mode], sampling())
    segments = [piece.segment for piece in pieces]
    assert segments == sorted(segments), "reasoning first, then the response"
    reasoning = [p.text for p in pieces if p.segment == common_pb2.SEGMENT_REASONING]
    response = [p.text for p in pieces if p.segment == common_pb2.SEGMENT_RESPONSE]
    assert len(reasoning) > 3, "the reasoning arrives as it is decoded, not at the end"
    assert "".join(reasoning) == rollout.reasoning == REASONING
    assert "".join(response) == rollout.response == "It is 5."
    assert not any("<" in piece.text or ">" in piece.text for piece in pieces), "no (partial) think tag is shown"


@pytest.mark.parametrize("how", ["message", "stream"])
@pytest.mark.parametrize("script", [CLOSES, "<think>\n" + CLOSES], ids=["template-opens-think", "model-writes-it"])
def test_a_server_without_a_reasoning_parser_sends_raw_text_that_is_split_here(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str, script: str
) -> None:
    server.field, server.script = None, script
    rollout = rollout_of(how, backends["raw"], sampling())
    assert (rollout.reasoning, rollout.response, rollout.reasoning_closed) == (REASONING, "It is 5.", True)
    assert rollout.reasoning_tokens == backends["raw"].count_tokens(REASONING)
    [body] = chat_requests(server)
    assert "thinking_token_budget" not in body, "a server without a parser refuses it"
    server.requests.clear()
    server.script = NEVER_CLOSES
    unclosed = rollout_of(how, backends["raw"], sampling())
    assert (unclosed.reasoning, unclosed.response, unclosed.reasoning_closed) == (NEVER_CLOSES, "", False)


def test_a_server_without_a_parser_refuses_the_reasoning_budget_with_a_clear_status(
    backends: dict[str, GenerationBackend], server: ReasoningServer
) -> None:
    server.field = None
    with pytest.raises(ServiceError) as error:
        generate(backends["chat"], sampling())
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "thinking_token_budget" in error.value.message and "--reasoning-parser" in error.value.message


def test_the_request_carries_the_turns_the_budgets_and_the_seed(
    backends: dict[str, GenerationBackend], server: ReasoningServer
) -> None:
    chat = backends["chat"]
    stream(chat, common_pb2.SamplingParams(temperature=0.7, top_p=0.9, seed=5, max_reasoning_tokens=40))
    generate(chat, sampling(reasoning=10, response=6))
    streamed, whole = chat_requests(server)
    assert streamed["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    close = chat.count_tokens(chat.format.forced_close)
    assert streamed["model"] == MODEL and streamed["thinking_token_budget"] == 40
    assert streamed["max_tokens"] == 40 + close + chat.settings.max_response_tokens
    assert (streamed["temperature"], streamed["top_p"]) == (pytest.approx(0.7), pytest.approx(0.9))
    assert isinstance(streamed["seed"], int) and streamed["stream_options"] == {"include_usage": True}
    assert (whole["max_tokens"], whole["thinking_token_budget"]) == (10 + close + 6, 10)
    assert "seed" not in whole and not whole["stream"] and "stream_options" not in whole


def test_samples_are_one_call_each_and_greedy_ones_share_it(
    backends: dict[str, GenerationBackend], server: ReasoningServer
) -> None:
    sampled = common_pb2.SamplingParams(temperature=0.7, seed=3, max_reasoning_tokens=64)
    request = generation_pb2.GenerateRequest(prompts=[PROMPT], n=3, sampling=sampled)
    rollouts = backends["chat"].generate([request])[0].rollouts
    seeds = [body["seed"] for body in chat_requests(server)]
    assert len(rollouts) == 3 and len(set(seeds)) == 3, "each sample its own call and seed: usage counts it alone"
    server.requests.clear()
    greedy = generation_pb2.GenerateRequest(prompts=[PROMPT], n=3, sampling=sampling())
    rollouts = backends["chat"].generate([greedy])[0].rollouts
    assert len(chat_requests(server)) == 1 and len({r.reasoning for r in rollouts}) == 1


@pytest.mark.parametrize("how", ["message", "stream"])
def test_stop_strings_cut_the_response_only(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str
) -> None:
    server.script = REASONING + "\n</think>\n\nIt is 5. Five is the answer."
    rollout = rollout_of(how, backends["chat"], sampling(stop=["is", "answer"]))
    assert rollout.reasoning == REASONING, "a stop string in the reasoning ('is all') does not cut it"
    assert (rollout.response, rollout.finish_reason) == ("It ", "stop")
    assert rollout.response_tokens == backends["chat"].count_tokens("It "), "counted here: usage counts the cut text"
    assert "stop" not in chat_requests(server)[0], "stop strings are applied here, not by the server"


@pytest.mark.parametrize("how", ["stream", "rpc-generate"])
def test_a_stream_stopped_by_a_stop_string_is_closed(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str
) -> None:
    server.script = REASONING + "\n</think>\n\nIt is 5." + LONG
    server.delay_s = 0.01
    params = sampling(response=400, stop=["5."])
    if how == "stream":
        pieces, rollout = stream(backends["chat"], params)
        assert "".join(p.text for p in pieces).endswith("It is ")
    else:  # a control that can end, as an RPC's: streamed, with nothing reported
        rollout = generate(backends["chat"], params, control=RequestControl(is_active=lambda: True))
    assert rollout.response == "It is " and rollout.finish_reason == "stop"
    _wait_for(lambda: server.disconnects == 1, "the server saw the stream closed")


def test_a_cancelled_call_closes_its_stream(backends: dict[str, GenerationBackend], server: ReasoningServer) -> None:
    server.script, server.delay_s = LONG, 0.02
    cancelled = threading.Event()
    outcome: list = []
    control = RequestControl(is_active=lambda: not cancelled.is_set())
    thread = threading.Thread(
        target=lambda: outcome.append(_raised(lambda: generate(backends["chat"], sampling(400), control=control)))
    )
    thread.start()
    _wait_for(lambda: chat_requests(server), "the server got the call")
    cancelled.set()
    thread.join(timeout=30)
    assert outcome and isinstance(outcome[0], Cancelled)
    assert chat_requests(server)[0]["stream"], "a call that can be cancelled is streamed"
    _wait_for(lambda: server.disconnects == 1, "the server saw the connection closed (vLLM aborts the request)")


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (400, "This model's maximum context length is 2048 tokens.", grpc.StatusCode.INVALID_ARGUMENT),
        (404, "The model `policy-v9` does not exist.", grpc.StatusCode.NOT_FOUND),
        (503, "the engine is overloaded", grpc.StatusCode.UNAVAILABLE),
    ],
)
@pytest.mark.parametrize("how", ["message", "stream"])
def test_error_answers_become_clear_statuses(
    backends: dict[str, GenerationBackend], server: ReasoningServer, how: str, status: int, message: str, code
) -> None:
    server.failures.extend([(status, message)] * 2)  # 503 is retried once (openai_max_retries=1): fail both
    error = _raised(lambda: rollout_of(how, backends["chat"], sampling()))
    assert isinstance(error, ServiceError) and error.code == code
    assert message in error.message and str(status) in error.message
    assert len(chat_requests(server)) == (2 if status == 503 else 1)


def test_a_busy_server_is_asked_again(backends: dict[str, GenerationBackend], server: ReasoningServer) -> None:
    server.failures.append((503, "the engine is overloaded"))
    assert generate(backends["chat"], sampling()).reasoning == REASONING
    assert len(chat_requests(server)) == 2


def test_an_error_in_the_middle_of_a_stream_is_unavailable(
    backends: dict[str, GenerationBackend], server: ReasoningServer
) -> None:
    server.break_after = 3
    error = _raised(lambda: stream(backends["chat"], sampling()))
    assert isinstance(error, ServiceError) and error.code == grpc.StatusCode.UNAVAILABLE
    assert "500" in error.message and "Internal server error" in error.message
    assert len(chat_requests(server)) == 1, "text already streamed out is not asked for again"


def test_an_unreachable_server_is_unavailable(tokenizer_folder: Path, server: ReasoningServer) -> None:
    backend = _backend(tokenizer_folder, "http://127.0.0.1:9/v1", model=MODEL)
    try:
        error = _raised(lambda: generate(backend, sampling()))
    finally:
        backend.close()
    assert isinstance(error, ServiceError) and error.code == grpc.StatusCode.UNAVAILABLE
    assert "127.0.0.1:9" in error.message


def test_continue_stays_on_completions_with_the_exact_text(
    backends: dict[str, GenerationBackend], server: ReasoningServer
) -> None:
    chat = backends["chat"]
    prefix = chat.context(PROMPT) + "Two plus three"
    request = generation_pb2.ContinueRequest(prefix=prefix, sampling=sampling(), in_reasoning=True)
    [continuation] = chat.continue_branches([request])[0].continuations
    assert continuation.reasoning and not chat_requests(server)
    first_path, first = server.requests[0]
    assert first_path == "/v1/completions" and first["prompt"] == prefix and first["stop"] == ["</think>"]


def _raised(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except Exception as error:  # the test inspects it
        return error
    return None


def _wait_for(condition: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)
