"""Queue handlers of the generation service: `rollout.requested` → `rollout.generated`, and
`continuation.requested` → `continuation.generated`, a batch of entries at a time.

A batch goes to the back end in one call, so rollouts and the trigger branches of several interventions
decode together (each intervention's branches share one prefill of `parent.context ⊕ kept_reasoning`). It goes
as `BULK` work: a back end that schedules by priority serves interactive RPCs first.

Failure policy, per entry:
- a request the back end refuses (ServiceError: empty prompt, over the context, unknown adapter, ...) will never
  succeed: its result is produced with `error` set (and the rollout's finish_reason "error"), and it is acked;
- any other failure (engine crash, out of memory) may be transient: the batch is retried one entry at a time,
  and entries that fail alone are reported failed and NOT acked, so the queue redelivers them and, after
  `max_deliveries`, moves them to the dead-letter stream.
Results are produced before the handler returns, and the queue acks only what the handler returned as done, so
an entry is never acked before its result is in the output stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.generation.backends.base import GenerationBackend
from shared.generation.control import BULK
from shared.generation.format import derive_seed
from shared.intervention.decisions import branch_rollout
from shared.observability import domain
from shared.protos.intervene.v1 import common_pb2, generation_pb2, queue_pb2
from shared.queues import Delivery, WorkQueue
from shared.queues.tracing import carry
from shared.rpc.errors import ServiceError

log = logging.getLogger(__name__)


def rollout_request(message: queue_pb2.RolloutRequested) -> generation_pb2.GenerateRequest:
    """The Generate request of one queued rollout; its seed is specialised to its sample index."""
    sampling = common_pb2.SamplingParams()
    sampling.CopyFrom(message.sampling)
    if sampling.HasField("seed"):
        sampling.seed = derive_seed(sampling.seed, "sample", message.sample_index) or 0
    return generation_pb2.GenerateRequest(prompts=[message.prompt], n=1, sampling=sampling, adapter=message.adapter)


def continuation_request(message: queue_pb2.ContinuationRequested) -> generation_pb2.ContinueRequest:
    """Every branch continues from parent.context ⊕ kept_reasoning ⊕ trigger_text, inside the reasoning."""
    return generation_pb2.ContinueRequest(
        prefix=message.parent.context + message.kept_reasoning,
        branches=[
            generation_pb2.ContinueBranch(id=branch.continuation_id, text=branch.trigger_text)
            for branch in message.branches
        ],
        n=1,
        sampling=message.sampling,
        adapter=message.adapter,
        in_reasoning=True,
    )


def _rollout_result(
    message: queue_pb2.RolloutRequested, response: generation_pb2.GenerateResponse | ServiceError
) -> queue_pb2.RolloutGenerated:
    if isinstance(response, ServiceError):
        rollout = common_pb2.Rollout(
            id=message.rollout_id, prompt=message.prompt, adapter=message.adapter, finish_reason="error"
        )
        domain.count_rollout("rollout", "queue", "error", 0, 0)
        return queue_pb2.RolloutGenerated(job_id=message.job_id, rollout=rollout, error=response.message)
    rollout = response.rollouts[0]
    rollout.id = message.rollout_id
    domain.count_rollout("rollout", "queue", rollout.finish_reason, rollout.reasoning_tokens, rollout.response_tokens)
    return queue_pb2.RolloutGenerated(job_id=message.job_id, rollout=rollout)


def _continuation_result(
    message: queue_pb2.ContinuationRequested,
    response: generation_pb2.ContinueResponse | ServiceError,
    model: str,
) -> queue_pb2.ContinuationGenerated:
    if isinstance(response, ServiceError):
        domain.count_rollout("continuation", "queue", "error", 0, 0)
        return queue_pb2.ContinuationGenerated(job_id=message.job_id, request=message, error=response.message)
    rollouts = [
        branch_rollout(
            message.parent,
            message.kept_reasoning + branch.trigger_text,
            branch.continuation_id,
            branch.trigger_id,
            message.round,
            continuation,
            model=model,
            adapter=message.adapter,
        )
        for branch, continuation in zip(message.branches, response.continuations, strict=True)
    ]
    for rollout in rollouts:
        domain.count_rollout(
            "continuation", "queue", rollout.finish_reason, rollout.reasoning_tokens, rollout.response_tokens
        )
    return queue_pb2.ContinuationGenerated(job_id=message.job_id, request=message, continuations=rollouts)


def _run_isolated(requests: Sequence[Any], call: Callable[[Sequence[Any]], list[Any]]) -> list[Any]:
    """Results of `call` over the batch; on failure, each request alone: a ServiceError or another exception."""
    try:
        return call(requests)
    except Exception as error:
        log.warning("generation batch of %d failed (%s); retrying entry by entry", len(requests), type(error).__name__)
    results: list[Any] = []
    for request in requests:
        try:
            results.append(call([request])[0])
        except Exception as error:
            results.append(error)
    return results


def rollout_handler(
    backend: GenerationBackend, output: WorkQueue[queue_pb2.RolloutGenerated]
) -> Callable[[Sequence[Delivery[queue_pb2.RolloutRequested]]], Mapping[str, BaseException]]:
    """Batch handler of `rollout.requested` (see the module docstring for the failure policy)."""

    def handle(deliveries: Sequence[Delivery[queue_pb2.RolloutRequested]]) -> Mapping[str, BaseException]:
        requests = [rollout_request(d.message) for d in deliveries]
        results = _run_isolated(requests, lambda batch: backend.generate(batch, control=BULK))
        return _produce(deliveries, results, output, _rollout_result)

    return handle


def continuation_handler(
    backend: GenerationBackend, output: WorkQueue[queue_pb2.ContinuationGenerated]
) -> Callable[[Sequence[Delivery[queue_pb2.ContinuationRequested]]], Mapping[str, BaseException]]:
    """Batch handler of `continuation.requested` (see the module docstring for the failure policy)."""

    def handle(deliveries: Sequence[Delivery[queue_pb2.ContinuationRequested]]) -> Mapping[str, BaseException]:
        requests = [continuation_request(d.message) for d in deliveries]
        results = _run_isolated(requests, lambda batch: backend.continue_branches(batch, control=BULK))
        return _produce(
            deliveries,
            results,
            output,
            lambda message, result: _continuation_result(message, result, backend.model_name),
        )

    return handle


def _produce(
    deliveries: Sequence[Delivery[Any]],
    results: list[Any],
    output: WorkQueue[Any],
    to_message: Callable[[Any, Any], Any],
) -> dict[str, BaseException]:
    """Produce every settled result (success or refused request); return the entries left to retry."""
    failures: dict[str, BaseException] = {}
    messages = []
    for delivery, result in zip(deliveries, results, strict=True):
        if isinstance(result, Exception) and not isinstance(result, ServiceError):
            failures[delivery.entry_id] = result
        else:
            messages.append(carry(delivery, to_message(delivery.message, result)))
    # Raising here (Redis down, back-pressure) fails the whole batch: nothing is acked, all is redelivered.
    output.produce_many(messages)
    return failures
