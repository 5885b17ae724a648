"""The metrics of SafeRollout calls: each call's outcome in `intervene_safe_rollouts_total` and the rounds of
its interventions in `intervene_interventions_total` (path "interactive").

    with counted("SafeRollout") as outcomes:
        outcome = runner.run(plan, deadline, call_id)
        outcomes.append(outcome)

An error counts by its status: a bad request or the client's own deadline, else `failed_closed` (nothing was
returned because a peer could not answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from shared.intervention.loop import Outcome
from shared.observability import domain
from shared.rpc.errors import ServiceError


@contextlib.contextmanager
def counted(method: str) -> Iterator[list[Outcome]]:
    """Counts the call's outcome: the body appends the Outcome it got; an exception counts by its status."""
    got: list[Outcome] = []
    try:
        yield got
    except ServiceError as error:
        domain.SAFE_ROLLOUTS.labels(method=method, outcome=error_outcome(error.code)).inc()
        raise
    except Exception:
        domain.SAFE_ROLLOUTS.labels(method=method, outcome="failed_closed").inc()
        raise
    if got:
        count_outcome(method, got[0])


def count_outcome(method: str, outcome: Outcome) -> None:
    """One answered call: clean, corrected or withheld, and whether each round of its interventions made it safe."""
    name = "withheld" if outcome.withheld else "corrected" if outcome.interventions else "clean"
    domain.SAFE_ROLLOUTS.labels(method=method, outcome=name).inc()
    rounds: dict[int, bool] = {}
    for record in outcome.interventions:
        rounds[record.round] = rounds.get(record.round, False) or record.success
    for round_, safe in sorted(rounds.items()):
        domain.INTERVENTIONS.labels(path="interactive", round=str(round_), outcome="safe" if safe else "unsafe").inc()


def error_outcome(code: grpc.StatusCode) -> str:
    """The outcome label of a call that ended with status `code`."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "deadline_exceeded"
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
        return "invalid_argument"
    return "failed_closed"
