"""Per-request control for generation: whether the caller still wants the result, and whose work it is.

A back end checks `active()` between decode steps and drops a request's sequences (freeing their cache)
as soon as it returns False: the gRPC call was cancelled or its deadline passed. `priority` lets a back
end's scheduler serve interactive RPCs before queue (bulk) work.

    control = RequestControl.for_rpc(context)          # in a servicer
    backend.continue_branches([request], control=control)
"""

from __future__ import annotations

import enum
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


def _always_active() -> bool:
    return True


@dataclass(frozen=True)
class RequestControl:
    """How one request is served: its priority, and a check that its caller is still waiting."""

    priority: Priority = Priority.INTERACTIVE
    is_active: Callable[[], bool] = _always_active

    def active(self) -> bool:
        return self.is_active()

    @classmethod
    def for_rpc(cls, context: _RpcContext) -> RequestControl:
        """An interactive request that lasts as long as the gRPC call `context` does."""
        return cls(Priority.INTERACTIVE, context.is_active)


UNCONTROLLED = RequestControl()
BULK = RequestControl(Priority.BULK)
