"""Every queue hop as spans of one trace: a PRODUCER span per entry written, a CONSUMER span per entry handled.

The producer's context travels inside the entry's body (`trace_context`, a map every queue message has), so a
rollout's trace runs from the call that queued it (SubmitPrompts) through each stage to the stored pair:

    rollout.requested publish -> rollout.requested process (generation) -> rollout.generated publish
        -> rollout.generated process (judge) -> ... -> pair.created process (pair store)

`stamp` runs as a message is encoded: its span is a child of the context already in the message (a batch
handler puts the entry's own there with `carry`), else of the current span. `run_observed` wraps a consumer's
handler: one CONSUMER span per delivery, child of the context its body carries; a per-entry handler runs with its
entry's span current (`current`), so what it produces continues that trace. Spans carry ids (job, rollout, entry),
never text. `run_observed` also counts handled entries (`intervene_queue_entries_total`), tracing on or off.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import Message

from shared.observability import domain, tracing
from shared.observability.logcontext import message_context, message_ids
from shared.queues.codec import Delivery

# handling.Outcome (handling imports this module, so it cannot be imported from there).
Outcome = tuple[list[str], list[tuple[Delivery[Any], str]], list[Delivery[Any]]]


def _field(message: Message, name: str) -> Any:
    return getattr(message, name) if name in message.DESCRIPTOR.fields_by_name else None


def _attributes(stream: str, message: Message, operation: str) -> dict[str, Any]:
    job, rollout = message_ids(message)
    return {
        "messaging.system": "redis",
        "messaging.destination.name": stream,
        "messaging.operation.type": operation,
        "intervene.job_id": job,
        "intervene.rollout_id": rollout,
    }


def stamp(stream: str, message: Message) -> None:
    """Records the publish of `message` to `stream` and puts that span's context in its `trace_context`."""
    if not tracing.enabled() or "trace_context" not in message.DESCRIPTOR.fields_by_name:
        return
    parent = dict(message.trace_context) or None
    span = tracing.start_span(f"{stream} publish", "producer", parent, _attributes(stream, message, "send"))
    message.trace_context.clear()
    message.trace_context.update(tracing.carrier(span))
    tracing.end_span(span)


def carry(delivery: Delivery[Any], message: Message) -> Message:
    """Puts the context of `delivery`'s CONSUMER span in `message` (an entry a batch handler makes from it), so
    the entry continues the delivery's trace; returns `message`."""
    if delivery.trace is not None:
        message.trace_context.clear()
        message.trace_context.update(tracing.carrier(delivery.trace))
    return message


class _Traced:
    __slots__ = ("_ids", "_span")

    def __init__(self, delivery: Delivery[Any]) -> None:
        self._ids = message_context(delivery.message)
        self._span = tracing.use_span(delivery.trace)

    def __enter__(self) -> None:
        self._ids.__enter__()
        self._span.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._span.__exit__(*exc)
        self._ids.__exit__(*exc)


def current(delivery: Delivery[Any]) -> message_context | _Traced:
    """A context manager: inside it the delivery's span is current and log lines carry its job and rollout ids.
    Entered once per queue entry, so while tracing is off it is only `message_context`."""
    return message_context(delivery.message) if delivery.trace is None else _Traced(delivery)


def run_observed(
    stream: str, group: str, batch: Sequence[Delivery[Any]], run: Callable[[Sequence[Delivery[Any]]], Outcome]
) -> Outcome:
    """`run(batch)` with a CONSUMER span per delivery (while tracing is on), counting its outcome."""
    if not batch:
        return run(batch)
    spans = None
    if tracing.enabled():
        traced = []
        for delivery in batch:
            attributes = _attributes(stream, delivery.message, "process")
            attributes.update(
                {
                    "messaging.consumer.group.name": group,
                    "messaging.message.id": delivery.entry_id,
                    "intervene.queue.deliveries": delivery.deliveries,
                }
            )
            parent = dict(_field(delivery.message, "trace_context") or {}) or None
            span = tracing.start_span(f"{stream} process", "consumer", parent, attributes)
            traced.append(dataclasses.replace(delivery, trace=span))
        batch, spans = traced, {d.entry_id: d.trace for d in traced}
    try:
        succeeded, failed, blocked = run(batch)
    except BaseException as error:
        for span in (spans or {}).values():
            tracing.end_span(span, type(error).__name__)
        raise
    for result, count in (("acked", len(succeeded)), ("failed", len(failed)), ("blocked", len(blocked))):
        if count:
            domain.QUEUE_ENTRIES.labels(stream=stream, group=group, result=result).inc(count)
    if spans is not None:
        for delivery, _ in failed:
            tracing.end_span(spans.pop(delivery.entry_id, None), "handler failed")
        for delivery in blocked:
            span = spans.pop(delivery.entry_id, None)
            if span is not None:
                span.set_attribute("intervene.queue.blocked", True)
                tracing.end_span(span)
        for span in spans.values():
            tracing.end_span(span)
    return succeeded, failed, blocked
