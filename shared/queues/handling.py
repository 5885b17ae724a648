"""Running a consumer's handler over a batch and sorting the outcome into acks and failures.

Two handler shapes: `Handler` takes one delivery and fails by raising; `BatchHandler` takes the whole
batch (so it can write all effects in one round trip) and returns the failed entries' errors by entry
id (raising fails the whole batch). Either way an entry is acknowledged only after its handler returned
without reporting it failed, i.e. after the caller's effect is durable.

A handler that raises BackPressureError (the stream it writes to is full) has not failed: the entries from
there on are *blocked*, to be handled again once the downstream stage catches up, without counting a failed
delivery against them. Counting it would dead-letter good work whenever a later stage is slow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.queues.codec import Delivery
from shared.queues.errors import BackPressureError
from shared.queues.tracing import current

log = logging.getLogger(__name__)

Handler = Callable[[Delivery[Any]], None]
BatchHandler = Callable[[Sequence[Delivery[Any]]], Mapping[str, BaseException | str] | None]
# (ids of entries that succeeded, failed deliveries with their error text, deliveries blocked by back-pressure)
Outcome = tuple[list[str], list[tuple[Delivery[Any], str]], list[Delivery[Any]]]

# Longest error text kept with a failed entry; enough for a message and the innermost frames' names.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ConsumeResult:
    """What one consume round did."""

    acked: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    # Left pending because a stream downstream was full; a reclaim brings them back.
    blocked: int = 0

    @property
    def handled(self) -> int:
        """Entries handed to the handler this round."""
        return self.acked + self.failed


def error_text(error: BaseException | str) -> str:
    """A failure as the text kept with the entry: exception class and message, bounded."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_CHARS]


def run_handler(deliveries: Sequence[Delivery[Any]], handler: Handler) -> Outcome:
    """Calls `handler` on each delivery until one is blocked by back-pressure; returns the Outcome. Each call runs
    with its delivery's span current and its job and rollout ids on log lines (`tracing.current`)."""
    succeeded: list[str] = []
    failed: list[tuple[Delivery[Any], str]] = []
    for index, delivery in enumerate(deliveries):
        try:
            with current(delivery):
                handler(delivery)
        except BackPressureError as error:
            log.warning("handler blocked on entry %s: %s", delivery.entry_id, error)
            return succeeded, failed, list(deliveries[index:])
        except Exception as error:
            log.warning("handler failed on entry %s (delivery %d): %s", delivery.entry_id, delivery.deliveries, error)
            failed.append((delivery, error_text(error)))
        else:
            succeeded.append(delivery.entry_id)
    return succeeded, failed, []


def run_batch_handler(deliveries: Sequence[Delivery[Any]], handler: BatchHandler) -> Outcome:
    """Calls `handler` on the whole batch; returns the Outcome (a BackPressureError blocks the whole batch)."""
    if not deliveries:
        return [], [], []
    try:
        failures = handler(deliveries) or {}
    except BackPressureError as error:
        log.warning("batch handler blocked on %d entries: %s", len(deliveries), error)
        return [], [], list(deliveries)
    except Exception as error:
        log.warning("batch handler failed on %d entries: %s", len(deliveries), error)
        text = error_text(error)
        return [], [(delivery, text) for delivery in deliveries], []
    succeeded = [d.entry_id for d in deliveries if d.entry_id not in failures]
    failed = [(d, error_text(failures[d.entry_id])) for d in deliveries if d.entry_id in failures]
    return succeeded, failed, []
