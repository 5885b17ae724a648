"""Queue handlers of the judge service: `rollout.generated` → `rollout.judged` and `continuation.generated` →
`continuation.judged`, a batch of entries at a time.

A batch is judged in one call (the classifier encodes all its steps together) and its results are
produced in one round trip before the entries are acked. Delivery is at least once, so an entry may be
judged twice; the intervention service keys its effects by rollout id, which makes that harmless.

Generation failures pass through unjudged (a `RolloutJudged` without a judgement, a
`ContinuationJudged` without judgements), so the intervention service counts them as failed. A trace
over the size limit fails its entry (and, after `max_deliveries`, lands in the dead-letter stream with
the reason). A judge back-end failure fails the whole batch, which is delivered again later.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from shared.datasets.catalog import DATASETS
from shared.judging.base import Judge, TraceInput
from shared.observability import domain
from shared.protos.intervene.v1 import common_pb2, queue_pb2
from shared.queues import BatchHandler, Delivery, WorkQueue
from shared.queues.tracing import carry

GROUP = "judge"


def _input(rollout: common_pb2.Rollout) -> TraceInput:
    return TraceInput(
        reasoning=rollout.reasoning,
        response=rollout.response,
        prompt=rollout.prompt.text,
        rollout_id=rollout.id,
        request_harmful=request_harmful(rollout.prompt),
    )


def request_harmful(prompt: common_pb2.Prompt) -> bool | None:
    """What is known of the request: a benign look-alike is benign, a prompt of a harmful set (STAR-1, AdvBench, ...)
    is harmful, as the evaluation takes it; otherwise (inline prompts, other sets) the judge decides from the text."""
    if prompt.benign:
        return False
    spec = DATASETS.get(prompt.dataset)
    return True if spec is not None and spec.harmful else None


def _too_long(rollout: common_pb2.Rollout, max_chars: int) -> str | None:
    for name in ("reasoning", "response"):
        length = len(getattr(rollout, name))
        if length > max_chars:
            return f"rollout {rollout.id}: {name} is {length} characters; the limit is {max_chars}"
    return None


def judge_rollouts(
    judge: Judge, output: WorkQueue[queue_pb2.RolloutJudged], max_chars: int, lock: threading.Lock | None = None
) -> BatchHandler:
    """Batch handler for `rollout.generated`."""

    def handle(deliveries: Sequence[Delivery[queue_pb2.RolloutGenerated]]) -> Mapping[str, str]:
        failures: dict[str, str] = {}
        passed: list[queue_pb2.RolloutJudged] = []
        to_judge: list[Delivery[queue_pb2.RolloutGenerated]] = []
        for delivery in deliveries:
            message = delivery.message
            if message.error or message.rollout.finish_reason == "error":
                passed.append(carry(delivery, queue_pb2.RolloutJudged(job_id=message.job_id, rollout=message.rollout)))
            elif problem := _too_long(message.rollout, max_chars):
                failures[delivery.entry_id] = problem
            else:
                to_judge.append(delivery)
        judgements = _judge(judge, lock, [_input(d.message.rollout) for d in to_judge])
        judged = [carry(d, _judged(d.message, j.to_proto())) for d, j in zip(to_judge, judgements, strict=True)]
        if passed or judged:
            output.produce_many([*passed, *judged])
        return failures

    return handle


def _judged(message: queue_pb2.RolloutGenerated, judgement: common_pb2.Judgement) -> queue_pb2.RolloutJudged:
    return queue_pb2.RolloutJudged(job_id=message.job_id, rollout=message.rollout, judgement=judgement)


def judge_continuations(
    judge: Judge, output: WorkQueue[queue_pb2.ContinuationJudged], max_chars: int, lock: threading.Lock | None = None
) -> BatchHandler:
    """Batch handler for `continuation.generated`: every branch of a request is judged."""

    def handle(deliveries: Sequence[Delivery[queue_pb2.ContinuationGenerated]]) -> Mapping[str, str]:
        failures: dict[str, str] = {}
        results: list[queue_pb2.ContinuationJudged] = []
        pending: list[tuple[Delivery[queue_pb2.ContinuationGenerated], list[TraceInput]]] = []
        for delivery in deliveries:
            message = delivery.message
            job_id = message.job_id or message.request.job_id
            if message.error:
                passed = queue_pb2.ContinuationJudged(
                    job_id=job_id, request=message.request, continuations=message.continuations
                )
                results.append(carry(delivery, passed))
                continue
            problems = [p for c in message.continuations if (p := _too_long(c, max_chars))]
            if problems:
                failures[delivery.entry_id] = problems[0]
                continue
            pending.append((delivery, [_input(c) for c in message.continuations]))
        judgements = iter(_judge(judge, lock, [trace for _, traces in pending for trace in traces]))
        for delivery, traces in pending:
            message = delivery.message
            judged = queue_pb2.ContinuationJudged(
                job_id=message.job_id or message.request.job_id,
                request=message.request,
                continuations=message.continuations,
                judgements=[next(judgements).to_proto() for _ in traces],
            )
            results.append(carry(delivery, judged))
        if results:
            output.produce_many(results)
        return failures

    return handle


def _judge(judge: Judge, lock: threading.Lock | None, traces: list[TraceInput]):
    if not traces:
        return []
    if lock is None:
        judgements = judge.judge_batch(traces)
    else:
        with lock:
            judgements = judge.judge_batch(traces)
    domain.count_judgements(judge.name, judgements)
    return judgements
