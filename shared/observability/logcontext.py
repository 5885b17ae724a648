"""Job, rollout and trace ids on log lines, so one job's or one rollout's lines can be found across services.

`log_context(job_id=..., rollout_id=...)` sets the ids for the code it wraps (a job's submission);
`message_context(body)` takes them from a queue entry's body, for its handler; `current_fields()` gives them, plus
the trace and span id of the current span when tracing is on, to the log formatter. Only ids ever go here: never
prompt, reasoning or pair text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from shared.observability import tracing

FIELDS = ("job_id", "rollout_id", "trace_id", "span_id")

# Per thread: every RPC and every queue worker runs in a thread of its own (the services use no asyncio), and a
# thread-local attribute is the cheapest state there is to set and restore once per queue entry.
_ids = threading.local()


class log_context:
    """Log lines written inside carry these ids (an empty id leaves the outer one in place)."""

    __slots__ = ("_job", "_rollout", "_saved")

    def __init__(self, job_id: str = "", rollout_id: str = "") -> None:
        self._job = job_id
        self._rollout = rollout_id
        self._saved = ("", "")

    def __enter__(self) -> None:
        self._saved = (getattr(_ids, "job_id", ""), getattr(_ids, "rollout_id", ""))
        if self._job:
            _ids.job_id = self._job
        if self._rollout:
            _ids.rollout_id = self._rollout

    def __exit__(self, *exc: object) -> None:
        _ids.job_id, _ids.rollout_id = self._saved


class message_context:
    """Log lines written inside carry the job and rollout ids of `message` (a queue body), read only when a line
    is written: a queue handler enters one per entry, so entering must cost next to nothing."""

    __slots__ = ("_message", "_saved")

    def __init__(self, message: Message) -> None:
        self._message = message
        self._saved: Message | None = None

    def __enter__(self) -> None:
        self._saved = getattr(_ids, "message", None)
        _ids.message = self._message

    def __exit__(self, *exc: object) -> None:
        _ids.message = self._saved


def _extractor(descriptor: Any) -> Callable[[Any], tuple[str, str]]:
    fields = descriptor.fields_by_name
    if "pair" in fields:
        return lambda m: (m.pair.provenance.job_id, m.pair.provenance.rollout_id)
    if "rollout_id" in fields and "job_id" in fields:
        return lambda m: (m.job_id, m.rollout_id)
    if "origin_rollout_id" in fields:
        return lambda m: (m.job_id, m.origin_rollout_id)
    if "rollout" in fields and "job_id" in fields:
        return lambda m: (m.job_id, m.rollout.id)
    if "request" in fields and "job_id" in fields:
        return lambda m: (m.job_id or m.request.job_id, m.request.origin_rollout_id)
    return lambda m: ("", "")


# Message type -> how to read its ids, worked out once per type.
_EXTRACTORS: dict[str, Callable[[Any], tuple[str, str]]] = {}


def message_ids(message: Message) -> tuple[str, str]:
    """(job id, rollout id) of a queue message: a continuation's original rollout, a pair's rollout."""
    name = message.DESCRIPTOR.full_name
    extract = _EXTRACTORS.get(name)
    if extract is None:
        extract = _EXTRACTORS[name] = _extractor(message.DESCRIPTOR)
    return extract(message)


def current_fields() -> dict[str, str]:
    """The ids that apply now; absent ones are left out."""
    job, rollout = getattr(_ids, "job_id", ""), getattr(_ids, "rollout_id", "")
    message = getattr(_ids, "message", None)
    if message is not None and not (job and rollout):
        from_message = message_ids(message)
        job, rollout = job or from_message[0], rollout or from_message[1]
    fields = {"job_id": job, "rollout_id": rollout}
    fields.update(tracing.current_ids())
    return {name: value for name, value in fields.items() if value}
