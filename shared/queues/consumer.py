"""`Worker`: the background loop that keeps a consumer group's share of a stream moving.

Each round it reclaims entries other consumers left idle (at most every `claim_idle_ms / 2`, and
again at once while the pending list still yields full batches), otherwise reads a batch of new
entries, hands the batch to the handler and acks what succeeded together with the next read (one
round trip per batch). It is built to be a service's background task (`start()` / `stop()`):

    worker = Worker(WorkQueue(client, ROLLOUT_REQUESTED), "generation", consumer_name(), handler)
    worker.start()   # a daemon thread
    ...
    worker.stop()    # finishes the batch in hand, acks it, returns

While the handler works on a batch, a heartbeat thread touches the batch's entries every
`claim_idle_ms / 3`, so a slow handler (generation on a CPU) keeps its entries instead of having them
reclaimed, and counted as failed deliveries, while still working on them.

A batch blocked by back-pressure (the handler's output stream is full) stays in hand, kept fresh by the
heartbeat, and is handled again after the same backing off until the stream has room: a slow stage slows
the stages before it instead of failing their entries into the dead-letter stream.

Losing Redis does not end the loop: it logs, backs off (0.1 s doubling to 5 s) and tries again. Nothing
is lost meanwhile — unacknowledged entries stay pending and are reclaimed — but a batch whose ack did
not reach Redis may be handled again: handlers are idempotent (see `shared.queues.stream`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from shared.queues.codec import Delivery
from shared.queues.handling import BatchHandler, Handler, Outcome, run_batch_handler, run_handler
from shared.queues.stream import WorkQueue
from shared.queues.tracing import run_observed

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


def consumer_name() -> str:
    """A consumer name unique to this process: host (the pod name in Kubernetes) and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    """Consumes one stream as one member of a consumer group until stopped."""

    def __init__(
        self,
        queue: WorkQueue[Any],
        group: str,
        consumer: str,
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        if handler is not None and batch_handler is None:
            self._run_handler: Callable[[Sequence[Delivery[Any]]], Outcome] = lambda batch: run_handler(batch, handler)
        elif batch_handler is not None and handler is None:
            self._run_handler = lambda batch: run_batch_handler(batch, batch_handler)
        else:
            raise ValueError("Worker needs exactly one of handler= (per entry) or batch_handler= (per batch)")
        self.queue = queue
        self.group = group
        self.consumer = consumer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Totals since start, for logs and metrics (dead letters: queue.dead_lettered).
        self.succeeded = 0
        self.failed = 0

    def start(self) -> None:
        """Creates the group now (so no entry produced from here on can miss it), then loops in a daemon thread."""
        if self.running:
            return
        try:
            self.queue.ensure_group(self.group)
        except redis.exceptions.RedisError as error:
            log.warning(
                "queue %s: group %s not created yet (%s); the loop will retry", self.queue.stream, self.group, error
            )
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=f"queue-{self.queue.stream}-{self.group}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Asks the loop to stop and waits for it: the batch in hand is finished and acked first.

        A read waiting for entries returns within `block_ms`, so a `timeout_s` above that plus one
        batch's handling time is enough.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def run(self, stop_event: threading.Event) -> None:
        """Reclaims, reads, handles and acks until `stop_event` is set."""
        heartbeat = _Heartbeat(self.queue, self.group, self.consumer)
        heartbeat.start()
        try:
            self._loop(stop_event, heartbeat)
        finally:
            heartbeat.stop()

    def _loop(self, stop_event: threading.Event, heartbeat: _Heartbeat) -> None:
        queue, group = self.queue, self.group
        to_ack: list[str] = []
        reclaim_every_s = queue.settings.claim_idle_ms / 2000
        next_reclaim = 0.0
        backoff = FIRST_BACKOFF_S
        while not stop_event.is_set():
            try:
                batch: list[Delivery[Any]] = []
                if time.monotonic() >= next_reclaim:
                    # Ack first: entries we finished must not be taken over as idle work.
                    queue.ack(group, to_ack)
                    to_ack = []
                    batch = queue.reclaim(group, self.consumer)
                    full = len(batch) >= queue.settings.batch_size
                    next_reclaim = 0.0 if full else time.monotonic() + reclaim_every_s
                if not batch:
                    batch = queue.read(group, self.consumer, acknowledge=to_ack)
                    to_ack = []
                heartbeat.hold([delivery.entry_id for delivery in batch])
                try:
                    to_ack, failed = self._handle(batch, stop_event)
                finally:
                    heartbeat.hold([])
                self.succeeded += len(to_ack)
                self.failed += len(failed)
                queue.fail(group, failed)
                backoff = FIRST_BACKOFF_S
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
                log.warning("queue %s: Redis unreachable (%s); retrying in %.1fs", queue.stream, error, backoff)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except redis.exceptions.RedisError:
                log.exception("queue %s: Redis error; retrying in %.1fs", queue.stream, backoff)
                stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._flush(to_ack)

    def _handle(
        self, batch: list[Delivery[Any]], stop_event: threading.Event
    ) -> tuple[list[str], list[tuple[Delivery[Any], str]]]:
        """Runs the handler over the batch, and again over its blocked entries until none is blocked (or the
        worker stops: entries still blocked then stay pending, for a reclaim); returns (to ack, failed)."""
        to_ack, failed, blocked = self._run(batch)
        wait = FIRST_BACKOFF_S
        while blocked and not stop_event.wait(wait):
            wait = min(wait * 2, MAX_BACKOFF_S)
            more_ack, more_failed, blocked = self._run(blocked)
            to_ack, failed = to_ack + more_ack, failed + more_failed
        return to_ack, failed

    def _run(self, batch: Sequence[Delivery[Any]]) -> Outcome:
        return run_observed(self.queue.stream, self.group, batch, self._run_handler)

    def _flush(self, to_ack: list[str]) -> None:
        try:
            self.queue.ack(self.group, to_ack)
        except redis.exceptions.RedisError as error:
            log.warning(
                "queue %s: could not ack %d entries on stop (%s); they will be redelivered",
                self.queue.stream,
                len(to_ack),
                error,
            )


class _Heartbeat:
    """A thread that keeps touching the entries a Worker is handling (see `WorkQueue.touch`)."""

    def __init__(self, queue: WorkQueue[Any], group: str, consumer: str) -> None:
        self._queue, self._group, self._consumer = queue, group, consumer
        self._interval_s = queue.settings.claim_idle_ms / 3000
        self._ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{queue.stream}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def hold(self, entry_ids: list[str]) -> None:
        """The entries being handled now (empty: none)."""
        self._ids = entry_ids

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            ids = self._ids
            if not ids:
                continue
            try:
                self._queue.touch(self._group, self._consumer, ids)
            except redis.exceptions.RedisError as error:
                log.warning("queue %s: could not touch %d entries in hand: %s", self._queue.stream, len(ids), error)
