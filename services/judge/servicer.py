"""The JudgeService RPCs: validate traces, run the configured judge, map its failures to status codes."""

from __future__ import annotations

import threading

import grpc

from shared.config.judge import JudgeSettings
from shared.judging.base import Judge, JudgeError, JudgeTimeout, TraceInput
from shared.observability import domain
from shared.protos.intervene.v1 import judge_pb2, judge_pb2_grpc
from shared.rpc.errors import ServiceError

SERVICE_NAME = judge_pb2.DESCRIPTOR.services_by_name["JudgeService"].full_name


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
            judgements = judge.judge_batch(traces)
        else:
            with lock:
                judgements = judge.judge_batch(traces)
    except JudgeTimeout as error:
        raise ServiceError.deadline_exceeded(f"judge back end {judge.name} timed out: {error}") from None
    except JudgeError as error:
        raise ServiceError.unavailable(f"judge back end {judge.name} failed: {error}; retry later") from None
    domain.count_judgements(judge.name, judgements)
    return judgements


class JudgeServicer:
    """JudgeTrace and JudgeSteps over one judge instance."""

    def __init__(self, judge: Judge, settings: JudgeSettings, lock: threading.Lock | None = None) -> None:
        self._judge = judge
        self._settings = settings
        # Shared with the queue workers when the judge is not thread-safe (the classifier's encoder).
        self._lock = lock

    def JudgeTrace(self, request, context: grpc.ServicerContext) -> judge_pb2.JudgeTraceResponse:
        if not request.HasField("trace"):
            raise ServiceError.invalid_argument("trace", "is missing")
        trace = trace_input(request.trace, "trace", self._settings.max_trace_chars)
        (judgement,) = run_judge(self._judge, self._lock, [trace])
        return judge_pb2.JudgeTraceResponse(judgement=judgement.to_proto())

    def JudgeSteps(self, request, context: grpc.ServicerContext) -> judge_pb2.JudgeStepsResponse:
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


def register(servicer: JudgeServicer, server: grpc.Server) -> None:
    """Adds the servicer (requests that do not parse are refused by the scaffold, naming the field)."""
    judge_pb2_grpc.add_JudgeServiceServicer_to_server(servicer, server)
