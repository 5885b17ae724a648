"""Per-request control for generation: whether the caller still wants the result, and whose work it is.

A back end checks `active()` between decode steps and drops a request's sequences (freeing their cache)
as soon as it returns False: the gRPC call was cancelled or its deadline passed. `priority` lets a back
end's scheduler serve interactive RPCs before queue (bulk) work. The deadline is read from the call when the
control is made, so a request stops at its deadline even where gRPC reports the expiry late.

    control = RequestControl.for_rpc(context)          # in a servicer
    backend.continue_branches([request], control=control)
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Priority(enum.IntEnum):
    """Lower values are served first."""

    INTERACTIVE = 0
    BULK = 1


class Cancelled(Exception):
    """The caller went away (cancelled, or its deadline passed) before decoding finished."""


class _RpcContext(Protocol):
    def is_active(self) -> bool: ...

    def time_remaining(self) -> float | None: ...


def _always_active() -> bool:
    return True


@dataclass(frozen=True)
class RequestControl:
    """How one request is served: its priority, and a check that its caller is still waiting."""

    priority: Priority = Priority.INTERACTIVE
    is_active: Callable[[], bool] = _always_active
    deadline: float | None = None
    """Seconds on the monotonic clock after which the caller no longer waits; None: no deadline."""

    def active(self) -> bool:
        return not self.expired() and self.is_active()

    @property
    def can_end(self) -> bool:
        """Whether the caller can go away before the result is ready (a deadline, or a call to watch)."""
        return self.deadline is not None or self.is_active is not _always_active

    def expired(self) -> bool:
        """Whether the deadline has passed (a cancelled call without one is inactive but not expired)."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    @classmethod
    def for_rpc(cls, context: _RpcContext) -> RequestControl:
        """An interactive request that lasts as long as the gRPC call `context` does, deadline included."""
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        return cls(Priority.INTERACTIVE, context.is_active, deadline)


UNCONTROLLED = RequestControl()
BULK = RequestControl(Priority.BULK)
