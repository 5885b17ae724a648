"""The JudgeService RPCs: validate traces, run the configured judge, map its failures to status codes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message

from services.judge.wire import bad_utf8_field
from shared.config.judge import JudgeSettings
from shared.judging.base import Judge, JudgeError, JudgeTimeout, TraceInput
from shared.protos.intervene.v1 import judge_pb2
from shared.rpc.errors import ServiceError

SERVICE_NAME = judge_pb2.DESCRIPTOR.services_by_name["JudgeService"].full_name


@dataclass(frozen=True)
class Undecodable:
    """A request protobuf refused to parse; `field` names the culprit when it is bad UTF-8."""

    field: str | None
    reason: str


def lenient(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A request deserializer that hands unparsable bytes to the servicer instead of failing the call
    with a generic INTERNAL status, so the client learns which field to fix."""

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError as error:
            return Undecodable(bad_utf8_field(data, message_type.DESCRIPTOR), str(error))

    return deserialize


def trace_input(trace: judge_pb2.Trace, field: str, max_chars: int) -> TraceInput:
    """Checks one trace and converts it; ServiceError(INVALID_ARGUMENT) names the field and the limit."""
    if not trace.reasoning.strip() and not trace.response.strip():
        raise ServiceError.invalid_argument(
            f"{field}.reasoning", "is empty or whitespace only, and so is the response: send the text to judge"
        )
    for name in ("reasoning", "response", "prompt"):
        length = len(getattr(trace, name))
        if length > max_chars:
            raise ServiceError.invalid_argument(
                f"{field}.{name}", f"is {length} characters; the limit is {max_chars} (INTERVENE_MAX_TRACE_CHARS)"
            )
    return TraceInput(
        reasoning=trace.reasoning, response=trace.response, prompt=trace.prompt, rollout_id=trace.rollout_id
    )


def run_judge(judge: Judge, lock: threading.Lock | None, traces: list[TraceInput]):
    """Judge traces; back-end failures become UNAVAILABLE / DEADLINE_EXCEEDED for the client."""
    try:
        if lock is None:
            return judge.judge_batch(traces)
        with lock:
            return judge.judge_batch(traces)
    except JudgeTimeout as error:
        raise ServiceError.deadline_exceeded(f"judge back end {judge.name} timed out: {error}") from None
    except JudgeError as error:
        raise ServiceError.unavailable(f"judge back end {judge.name} failed: {error}; retry later") from None


class JudgeServicer:
    """JudgeTrace and JudgeSteps over one judge instance."""

    def __init__(self, judge: Judge, settings: JudgeSettings, lock: threading.Lock | None = None) -> None:
        self._judge = judge
        self._settings = settings
        # Shared with the queue workers when the judge is not thread-safe (the classifier's encoder).
        self._lock = lock

    def JudgeTrace(self, request, context: grpc.ServicerContext) -> judge_pb2.JudgeTraceResponse:
        _reject_undecodable(request, "trace")
        if not request.HasField("trace"):
            raise ServiceError.invalid_argument("trace", "is missing")
        trace = trace_input(request.trace, "trace", self._settings.max_trace_chars)
        (judgement,) = run_judge(self._judge, self._lock, [trace])
        return judge_pb2.JudgeTraceResponse(judgement=judgement.to_proto())

    def JudgeSteps(self, request, context: grpc.ServicerContext) -> judge_pb2.JudgeStepsResponse:
        _reject_undecodable(request, "traces")
        limit = self._settings.max_traces_per_call
        if not request.traces:
            raise ServiceError.invalid_argument("traces", "is empty: send at least one trace")
        if len(request.traces) > limit:
            raise ServiceError.invalid_argument(
                "traces",
                f"has {len(request.traces)} traces; the limit is {limit} per call (INTERVENE_MAX_TRACES_PER_CALL)",
            )
        traces = [
            trace_input(trace, f"traces[{index}]", self._settings.max_trace_chars)
            for index, trace in enumerate(request.traces)
        ]
        judgements = run_judge(self._judge, self._lock, traces)
        return judge_pb2.JudgeStepsResponse(judgements=[j.to_proto() for j in judgements])


def _reject_undecodable(request: object, default_field: str) -> None:
    if isinstance(request, Undecodable):
        if request.field is not None:
            raise ServiceError.invalid_argument(request.field, "is not valid UTF-8: send text encoded as UTF-8")
        raise ServiceError.invalid_argument(default_field, f"request could not be parsed ({request.reason})")


def register(servicer: JudgeServicer, server: grpc.Server) -> None:
    """Adds the servicer with lenient request parsing (see `lenient`)."""
    handlers = {
        "JudgeTrace": grpc.unary_unary_rpc_method_handler(
            servicer.JudgeTrace,
            request_deserializer=lenient(judge_pb2.JudgeTraceRequest),
            response_serializer=judge_pb2.JudgeTraceResponse.SerializeToString,
        ),
        "JudgeSteps": grpc.unary_unary_rpc_method_handler(
            servicer.JudgeSteps,
            request_deserializer=lenient(judge_pb2.JudgeStepsRequest),
            response_serializer=judge_pb2.JudgeStepsResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
