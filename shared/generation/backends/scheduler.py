"""Continuous batching for an in-process model: one thread owns the model and decodes every caller's rows together.

Why: the generation service answers many RPCs and queue batches at once, and decoding them one request at a time
leaves the model's batch dimension idle (100 concurrent streams ran no faster than one after another). Here each
caller submits its rows as a *job* and waits; between two decode steps the scheduler

1. drops the rows of jobs whose caller went away (`RequestControl.active()` is False: cancelled, or past its
   deadline), so their cache slots are free for other rows within one step, and fails those jobs with `Cancelled`;
2. pauses bulk rows beyond `bulk_share` of the batch while interactive work waits or decodes (their caches are
   kept; they resume once no interactive job remains), so an interactive request is not stuck behind, or slowed
   by, a batch full of queue work;
3. admits waiting rows in priority order (interactive first, then by arrival), whole prefix groups at a time so
   that a Continue's branches still share one prefill, up to `capacity` decoding rows;
4. runs one decode step of every adapter's batch; finished rows leave and their job completes with its last row.

The model-specific work (prefill, one decode step, merging and selecting batches) is the `BatchEngine`'s; this
module only decides who decodes when. `step()` is public so that tests can drive the scheduler deterministically.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.generation.backends.base import Decoded, Row, TextCallback
from shared.generation.control import Cancelled, Priority, RequestControl

log = logging.getLogger(__name__)


class Batch(Protocol):
    """Rows decoding together with one adapter, each with its next-token logits ready."""

    @property
    def states(self) -> Sequence[Any]: ...


class BatchEngine(Protocol):
    """The model side of continuous batching (see transformers.py)."""

    def guard(self) -> AbstractContextManager[Any]:
        """Held around every use of the model (adapter loading takes it too)."""

    def prefill(self, rows: Sequence[tuple[Job, int, Row]], adapter: str) -> tuple[Batch | None, list[Any]]:
        """A batch of the rows (job, index, row), and the states of rows that finished without decoding."""

    def decode_step(self, batch: Batch) -> tuple[Batch | None, list[Any]]:
        """One token for every row; the batch without its finished rows (None when none is left), and those."""

    def merge(self, first: Batch, second: Batch) -> Batch:
        """One batch of both (rows of `first`, then of `second`); both are consumed."""

    def select(self, batch: Batch, positions: list[int]) -> Batch | None:
        """The batch with only the rows at `positions` (ascending; None if empty), in an order of the engine's
        choosing; `batch` is consumed and the other rows' cache slots are reused."""

    def take(self, batch: Batch, positions: list[int]) -> Batch:
        """A new batch with copies of the rows at `positions`; `batch` is unchanged."""

    def result(self, state: Any) -> Decoded:
        """What a finished row decoded."""


@dataclass(eq=False)
class Job:
    """One caller's rows: admitted a group at a time, complete when every row has finished."""

    id: int
    rows: list[Row]
    adapter: str
    on_text: TextCallback | None
    control: RequestControl
    future: Future[list[Decoded]] = field(default_factory=Future)
    admitted: int = 0
    results: list[Decoded | None] = field(default_factory=list)
    left: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)
        self.left = len(self.rows)

    @property
    def interactive(self) -> bool:
        return self.control.priority == Priority.INTERACTIVE

    def order(self) -> tuple[int, int]:
        return (int(self.control.priority), self.id)

    def next_group(self) -> int:
        """Rows left to admit of the next prefix group (0 when every row is admitted)."""
        start = self.admitted
        end = start
        while end < len(self.rows) and self.rows[end].group == self.rows[start].group:
            end += 1
        return end - start


@dataclass(frozen=True)
class Admission:
    """A record of rows joining the batch: in which step, whose, how many, and with what priority."""

    step: int
    job: int
    priority: Priority
    rows: int


@dataclass(frozen=True)
class SchedulerStats:
    """Rows decoding, paused and waiting, and jobs not yet complete, as of the end of the last step; and the jobs
    dropped so far because their caller went away."""

    running: int = 0
    paused: int = 0
    waiting: int = 0
    jobs: int = 0
    interactive_running: int = 0
    bulk_running: int = 0
    cancelled: int = 0


class Scheduler:
    """Decodes the jobs submitted from any thread on one thread of its own (see the module docstring)."""

    def __init__(self, engine: BatchEngine, capacity: int, bulk_share: float, *, name: str = "generation") -> None:
        self.engine = engine
        self.capacity = capacity
        self.bulk_share = bulk_share
        self._name = name
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._waiting: list[Job] = []
        self._jobs: set[Job] = set()
        self._active: dict[str, Batch] = {}
        self._paused: dict[str, Batch] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._holds = 0
        self._stats = SchedulerStats()
        self._steps = 0
        self._cancelled = 0
        self.admissions: deque[Admission] = deque(maxlen=10_000)
        """Every admission, oldest first (bounded): the order the policy chose, for tests and debugging."""

    # -- callers' side ----------------------------------------------------------------------------------------

    def submit(self, rows: Sequence[Row], adapter: str, on_text: TextCallback | None, control: RequestControl) -> Job:
        """Queue the rows; `job.future` gives their results in order, or raises `Cancelled` or the engine's error."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the generation scheduler is closed")
            job = Job(next(self._ids), list(rows), adapter, on_text, control)
            if not job.rows:
                job.future.set_result([])
                return job
            self._waiting.append(job)
            self._jobs.add(job)
            self._cond.notify_all()
        return job

    def decode(
        self, rows: Sequence[Row], adapter: str, on_text: TextCallback | None, control: RequestControl
    ) -> list[Decoded]:
        """Submit and wait for the results."""
        return self.submit(rows, adapter, on_text, control).future.result()

    def stats(self) -> SchedulerStats:
        return self._stats

    def queued(self) -> int:
        """Jobs submitted and not complete (up to date, unlike `stats`)."""
        with self._cond:
            return len(self._jobs)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """No step starts while held (the one under way finishes): lets a test queue jobs before any is admitted."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify_all()

    # -- the scheduler thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-scheduler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; jobs not yet complete fail with `Cancelled`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        for job in list(self._jobs):
            self._finish_job(job, Cancelled("the generation back end closed"))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._holds or not self._jobs):
                    self._cond.wait()
                if self._closed:
                    return
            try:
                self.step()
            except Exception:  # a bug here must not kill the thread every caller waits on
                log.exception("generation scheduler step failed; failing its jobs")
                self._fail_everything(RuntimeError("the generation scheduler failed"))

    def step(self) -> None:
        """One round: drop gone callers, pause or resume bulk rows, admit waiting rows, one decode step."""
        self._steps += 1
        with self._cond:
            waiting = sorted(self._waiting, key=Job.order)
            jobs = list(self._jobs)
        with self.engine.guard():
            for job in jobs:
                if not job.control.active():
                    self._cancelled += 1
                    self._drop(job, Cancelled("the caller cancelled or its deadline passed"))
            waiting = [job for job in waiting if job in self._jobs]
            with self._cond:
                interactive = any(job.interactive for job in self._jobs)
            bulk_limit = int(self.bulk_share * self.capacity) if interactive else self.capacity
            self._pause_or_resume(bulk_limit)
            self._admit(waiting, bulk_limit)
            for adapter in list(self._active):
                batch = self._active.pop(adapter)
                try:
                    remaining, finished = self.engine.decode_step(batch)
                except Exception as error:
                    self._fail_batch(batch, error)
                    continue
                if remaining is not None:
                    self._active[adapter] = remaining
                self._record(finished)
        self._update_stats()

    # -- policy -----------------------------------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        """(interactive, bulk) rows decoding."""
        interactive = sum(1 for b in self._active.values() for s in b.states if s.job.interactive)
        return interactive, sum(len(b.states) for b in self._active.values()) - interactive

    def _pause_or_resume(self, bulk_limit: int) -> None:
        _, bulk = self._counts()
        if bulk > bulk_limit:
            excess = bulk - bulk_limit
            # The most recently admitted bulk rows pause first: the older ones are closer to done.
            for adapter in reversed(list(self._active)):
                if excess == 0:
                    break
                batch = self._active[adapter]
                bulk = [p for p, s in enumerate(batch.states) if not s.job.interactive]
                bulk.sort(key=lambda p: (batch.states[p].job.id, batch.states[p].index))
                pause = sorted(bulk[len(bulk) - min(excess, len(bulk)) :])
                excess -= len(pause)
                self._move(adapter, batch, pause, self._active, self._paused)
            return
        interactive, bulk = self._counts()
        room = min(bulk_limit - bulk, self.capacity - interactive - bulk)
        for adapter in list(self._paused):
            if room <= 0:
                break
            batch = self._paused[adapter]
            resume = list(range(min(room, len(batch.states))))
            room -= len(resume)
            self._move(adapter, batch, resume, self._paused, self._active)

    def _move(self, adapter: str, batch: Batch, positions: list[int], source: dict, target: dict) -> None:
        """Move the rows at `positions` of `source[adapter]` (which is `batch`) onto `target[adapter]`."""
        if not positions:
            return
        moving = set(positions)
        keep = [p for p in range(len(batch.states)) if p not in moving]
        moved = batch if not keep else self.engine.take(batch, positions)
        rest = None if not keep else self.engine.select(batch, keep)
        if rest is None:
            source.pop(adapter)
        else:
            source[adapter] = rest
        assert moved is not None
        target[adapter] = moved if adapter not in target else self.engine.merge(target[adapter], moved)

    def _admit(self, waiting: list[Job], bulk_limit: int) -> None:
        interactive, bulk = self._counts()
        taken: dict[str, list[tuple[Job, int, Row]]] = {}
        for job in waiting:
            room = self.capacity - interactive - bulk
            if not job.interactive:
                # Paused rows are older than any waiting bulk row: they resume first.
                room = 0 if self._paused else min(room, bulk_limit - bulk)
            admitted = 0
            while room > 0 and (size := job.next_group()):
                # A group joins whole so that it keeps one shared prefill; only a group larger than the whole batch
                # is split.
                count = size if size <= room else room if size > self.capacity else 0
                if count == 0:
                    break
                start = job.admitted
                taken.setdefault(job.adapter, []).extend((job, i, job.rows[i]) for i in range(start, start + count))
                job.admitted += count
                admitted += count
                room -= count
                if job.interactive:
                    interactive += count
                else:
                    bulk += count
            if admitted:
                self.admissions.append(Admission(self._steps, job.id, job.control.priority, admitted))
            if job.admitted < len(job.rows):
                break  # strict order: a job that waits for room is not overtaken
        with self._cond:
            self._waiting = [job for job in self._waiting if job.admitted < len(job.rows) and job in self._jobs]
        for adapter, rows in taken.items():
            try:
                batch, finished = self.engine.prefill(rows, adapter)
            except Exception as error:
                for job in {job for job, _, _ in rows}:
                    self._drop(job, error)
                continue
            if batch is not None:
                self._active[adapter] = (
                    batch if adapter not in self._active else self.engine.merge(self._active[adapter], batch)
                )
            self._record(finished)

    # -- bookkeeping ------------------------------------------------------------------------------------------

    def _record(self, finished: list[Any]) -> None:
        for state in finished:
            job = state.job
            if job not in self._jobs:
                continue
            job.results[state.index] = self.engine.result(state)
            job.left -= 1
            if job.left == 0:
                self._finish_job(job, None)

    def _finish_job(self, job: Job, error: BaseException | None) -> None:
        with self._cond:
            self._jobs.discard(job)
            self._waiting = [waiting for waiting in self._waiting if waiting is not job]
        if job.future.done():
            return
        if error is None:
            job.future.set_result([result for result in job.results if result is not None])
        else:
            job.future.set_exception(error)

    def _fail_everything(self, error: BaseException) -> None:
        """After a failed step: every batch is let go and every job fails with `error`, touching no cache (the
        failure may have left one half-updated), so the thread goes on and no caller waits forever."""
        self._active.clear()
        self._paused.clear()
        for job in list(self._jobs):
            self._finish_job(job, error)

    def _drop(self, job: Job, error: BaseException) -> None:
        """Remove every row of `job` from the batches (their cache slots go to other rows) and fail it with `error`.
        Called inside the engine's guard."""
        for batches in (self._active, self._paused):
            for adapter in list(batches):
                batch = batches[adapter]
                keep = [p for p, s in enumerate(batch.states) if s.job is not job]
                if len(keep) == len(batch.states):
                    continue
                rest = self.engine.select(batch, keep) if keep else None
                if rest is None:
                    batches.pop(adapter)
                else:
                    batches[adapter] = rest
        self._finish_job(job, error)

    def _fail_batch(self, batch: Batch, error: BaseException) -> None:
        log.warning("decode step failed (%s); failing the jobs of its %d rows", type(error).__name__, len(batch.states))
        for job in {state.job for state in batch.states}:
            self._drop(job, error)

    def _update_stats(self) -> None:
        interactive, bulk = self._counts()
        with self._cond:
            waiting = sum(len(job.rows) - job.admitted for job in self._waiting)
            jobs = len(self._jobs)
        self._stats = SchedulerStats(
            running=interactive + bulk,
            paused=sum(len(b.states) for b in self._paused.values()),
            waiting=waiting,
            jobs=jobs,
            interactive_running=interactive,
            bulk_running=bulk,
            cancelled=self._cancelled,
        )


def with_group_keys(rows: Sequence[tuple[Job, int, Row]]) -> list[Row]:
    """The rows with group keys unique across jobs (each job numbers its own groups from 0)."""
    keys: dict[tuple[int, int], int] = {}
    return [dataclasses.replace(row, group=keys.setdefault((job.id, row.group), len(keys))) for job, _, row in rows]
