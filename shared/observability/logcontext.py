"""Job, rollout and trace ids on log lines, so one job's or one rollout's lines can be found across services.

`log_context(job_id=..., rollout_id=...)` sets the ids for the code it wraps (a queue entry's handler, an RPC);
`current_fields()` gives them, plus the trace and span id of the current span when tracing is on, to the log
formatter. Only ids ever go here: never prompt, reasoning or pair text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from shared.observability import tracing

_JOB_ID: ContextVar[str] = ContextVar("intervene_job_id", default="")
_ROLLOUT_ID: ContextVar[str] = ContextVar("intervene_rollout_id", default="")

FIELDS = ("job_id", "rollout_id", "trace_id", "span_id")


@contextlib.contextmanager
def log_context(job_id: str = "", rollout_id: str = "") -> Iterator[None]:
    """Log lines written inside carry these ids (an empty id leaves the outer one in place)."""
    tokens = []
    if job_id:
        tokens.append((_JOB_ID, _JOB_ID.set(job_id)))
    if rollout_id:
        tokens.append((_ROLLOUT_ID, _ROLLOUT_ID.set(rollout_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_fields() -> dict[str, str]:
    """The ids that apply now; absent ones are left out."""
    fields = {"job_id": _JOB_ID.get(), "rollout_id": _ROLLOUT_ID.get()}
    fields.update(tracing.current_ids())
    return {name: value for name, value in fields.items() if value}
