"""Every RPC of every service under hostile requests, over real gRPC against the real services.

For each method of the generated descriptors, hypothesis draws request bytes (`test_fuzz_wire.hostile_request`:
random fields, invalid UTF-8, extreme integers, unknown fields, deep nesting, truncation, garbage, strings of
megabytes on either side of the message limit) and sends them as they are. Each call must end, within a
generous deadline, in a status a client can act on — never UNKNOWN or INTERNAL (a crash) and never a deadline
on a generous budget (a hang) — its message must not echo a long string of the request back, and afterwards
every service must still report SERVING. Tiny deadlines, and random tokens in the authorization header, get
their own runs. The number of cases run is printed in the terminal summary.

    .venv/bin/pytest tests/reliability/test_fuzz_rpc.py        # ≈2 minutes on 2 cores
    INTERVENE_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/reliability/test_fuzz_rpc.py   # a longer run
    INTERVENE_FUZZ_RANDOM=1 .venv/bin/pytest tests/reliability/test_fuzz_rpc.py       # new inputs each run

By default the cases are derandomized (the same each run), so CI is reproducible and a red run is a change in
the code, not a new draw; INTERVENE_FUZZ_RANDOM=1 explores, and a failure prints the case to reproduce it.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import huggingface_hub.constants
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.protos.intervene.v1 import common_pb2, generation_pb2, intervention_pb2, judge_pb2, pairstore_pb2
from tests.reliability.security_fixtures import (
    MAX_MESSAGE_BYTES,
    READ_TOKEN,
    TOKEN,
    Reply,
    Services,
    api_methods,
    start_services,
    wait_until_serving,
)
from tests.reliability.test_fuzz_wire import Request, hostile_request
from tools.redis_process import RedisProcess

pytestmark = pytest.mark.slow

METHODS = api_methods()
EXAMPLES = int(os.environ.get("INTERVENE_FUZZ_EXAMPLES", "100"))
GENEROUS_S = 60.0
"""A deadline no well-behaved call comes near: reaching it means the server hung."""
LONG_ECHO = 100
"""An error message may quote a short field value (an id), never this many characters of a long one."""
ACTIONABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("INTERVENE_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


class CaseCounter:
    """Counts the calls the fuzz tests make, by method and status, and prints the totals after the run."""

    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()

    def record(self, method: MethodDescriptor, reply: Reply) -> None:
        self.by_method[f"{method.containing_service.name}/{method.name}"] += 1
        self.by_code[reply.code.name] += 1

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.by_method:
            return
        total = sum(self.by_method.values())
        terminalreporter.section("security fuzz")
        terminalreporter.write_line(f"{total} fuzz cases over {len(self.by_method)} RPCs")
        terminalreporter.write_line("by status: " + ", ".join(f"{k} {v}" for k, v in self.by_code.most_common()))
        for name, count in sorted(self.by_method.items()):
            terminalreporter.write_line(f"  {name}: {count}")


@pytest.fixture(scope="module")
def cases(request: pytest.FixtureRequest) -> CaseCounter:
    counter = CaseCounter()
    request.config.pluginmanager.register(counter, "intervene-security-fuzz-counter")
    return counter


@pytest.fixture(scope="module")
def services(redis_process: RedisProcess, tiny_model_folder: Path) -> Iterator[Services]:
    with pytest.MonkeyPatch.context() as patch:
        # LoadAdapter takes hub ids: the fuzzer's random ones must fail here at once, never reach for the network.
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        running = start_services(redis_process.url, tiny_model_folder)
        try:
            wait_until_serving(running)
            yield running
        finally:
            running.stop()


def _name(method: MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


def check_reply(method: MethodDescriptor, request: Request, reply: Reply, allowed: set[grpc.StatusCode]) -> None:
    assert reply.code in allowed, f"{_name(method)} answered {reply.code.name} ({reply.details[:300]!r}) to {request}"
    echoed = [text[:40] for text in request.notes.long_texts if text[:LONG_ECHO] in reply.details]
    assert not echoed, f"{_name(method)}'s error message echoes request text back: {reply.details[:300]!r}"
    assert len(reply.details) < 2000, f"{_name(method)} sent a {len(reply.details)}-character error message"


def test_every_service_and_rpc_is_fuzzed(services: Services) -> None:
    """The fuzzed methods come from every generated proto module; they are exactly the services that run."""
    fuzzed = {method.containing_service.full_name for method in METHODS}
    served = {name for server in services.servers.values() for name in server.spec.service_names}
    assert fuzzed == served, "a service is declared in the protos but not started by security_fixtures"
    assert len(served) == 4 and len(METHODS) >= 17
    assert {method.containing_service.name for method in METHODS if method.server_streaming} >= {
        "GenerationService",
        "InterventionService",
        "PairStoreService",
    }


@pytest.mark.parametrize("method", METHODS, ids=_name)
def test_hostile_requests_get_an_actionable_status(
    services: Services, cases: CaseCounter, method: MethodDescriptor
) -> None:
    @FUZZ_SETTINGS
    @given(request=hostile_request(method.input_type, MAX_MESSAGE_BYTES))
    def run(request: Request) -> None:
        reply = services.call(method, request.payload, GENEROUS_S)
        cases.record(method, reply)
        check_reply(method, request, reply, ACTIONABLE)
        assert not services.not_serving(), f"after {_name(method)} with {request}: {services.not_serving()}"

    run()


@pytest.mark.parametrize("method", METHODS, ids=_name)
def test_tiny_deadlines_end_cleanly(services: Services, cases: CaseCounter, method: MethodDescriptor) -> None:
    """A deadline too short for the work may end in DEADLINE_EXCEEDED, and the server keeps serving."""

    @settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 6, 5))
    @given(
        request=hostile_request(method.input_type, MAX_MESSAGE_BYTES).filter(lambda r: r.kind == "fields"),
        timeout=st.floats(0.001, 0.5),
    )
    def run(request: Request, timeout: float) -> None:
        reply = services.call(method, request.payload, timeout)
        cases.record(method, reply)
        check_reply(method, request, reply, ACTIONABLE | {grpc.StatusCode.DEADLINE_EXCEEDED})
        assert not services.not_serving()

    run()


TOKENS = st.one_of(
    st.text(alphabet=string.printable.strip() + " ", max_size=80),
    st.sampled_from([TOKEN[:-1], TOKEN + "x", TOKEN.upper(), READ_TOKEN[1:], f"{TOKEN} {READ_TOKEN}", ""]),
)


@FUZZ_SETTINGS
@given(
    method=st.sampled_from(METHODS),
    scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  ", "Token "]),
    token=TOKENS,
)
def test_random_authorization_is_refused(
    services: Services, cases: CaseCounter, method: MethodDescriptor, scheme: str, token: str
) -> None:
    """Anything but a configured token in the authorization header is UNAUTHENTICATED, on every RPC."""
    metadata = (("authorization", f"{scheme}{token}"),)
    channel = services.channel(method.containing_service.name, None)
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            list(channel.unary_stream(path)(b"", timeout=GENEROUS_S, metadata=metadata))
        else:
            channel.unary_unary(path)(b"", timeout=GENEROUS_S, metadata=metadata)
        reply = Reply(grpc.StatusCode.OK, "")
    except grpc.RpcError as error:
        reply = Reply(error.code(), error.details() or "")
    cases.record(method, reply)
    granted = scheme.strip().lower() == "bearer" and token.strip() in (TOKEN, READ_TOKEN)
    if not granted:
        assert reply.code == grpc.StatusCode.UNAUTHENTICATED, (method.name, scheme, token, reply)
        assert len(token.strip()) < 8 or token.strip() not in reply.details, "the refusal echoes the token"


BAD_UTF8 = [
    (
        "PairStoreService",
        "PutPairs",
        pairstore_pb2.PutPairsRequest(pairs=[common_pb2.Pair(), common_pb2.Pair(chosen="é")]),
        "pairs[1].chosen",
    ),
    (
        "InterventionService",
        "SubmitPrompts",
        intervention_pb2.SubmitPromptsRequest(prompts=[common_pb2.Prompt(text="é")]),
        "prompts[0].text",
    ),
    (
        "GenerationService",
        "GenerateStream",
        generation_pb2.GenerateStreamRequest(prompt=common_pb2.Prompt(text="é")),
        "prompt.text",
    ),
    (
        "JudgeService",
        "JudgeTrace",
        judge_pb2.JudgeTraceRequest(trace=judge_pb2.Trace(reasoning="é")),
        "trace.reasoning",
    ),
]


@pytest.mark.parametrize(("service", "name", "message", "field"), BAD_UTF8, ids=[row[1] for row in BAD_UTF8])
def test_invalid_utf8_is_refused_naming_the_field(
    services: Services, service: str, name: str, message: Message, field: str
) -> None:
    method = next(m for m in METHODS if m.containing_service.name == service and m.name == name)
    payload = message.SerializeToString().replace("é".encode(), b"\xc3\x28")  # a broken two-byte sequence
    reply = services.call(method, payload, GENEROUS_S)
    assert reply.code == grpc.StatusCode.INVALID_ARGUMENT and reply.details.startswith(f"{field}: is not valid UTF-8")
    # Without a token, the same bytes are refused for the token first: parse errors tell strangers nothing.
    assert services.call(method, payload, GENEROUS_S, token=None).code == grpc.StatusCode.UNAUTHENTICATED
