"""Continuous batching in the transformers back end, on the tiny random-weight model (shared.models.tiny).

Concurrent requests decode in one batch and answer exactly as each alone (greedy and seeded); rows that join a
running batch mid-decode, pause or leave it change no one's output; interactive work is admitted before bulk
work and bulk work shrinks to its share while interactive work runs; a caller that goes away (cancelled, or past
its deadline) loses its rows at the next step. Policy tests drive a scheduler of their own step by step over the
back end's engine, so what they check is the admission order, never a timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.config.generation import GenerationSettings
from shared.generation.backends.base import Decoded, GenerationBackend, Row, create_backend
from shared.generation.backends.scheduler import Job, Scheduler
from shared.generation.control import BULK, Cancelled, Priority, RequestControl
from shared.generation.format import Sampling, derive_seed
from shared.models.tiny import tiny_model
from shared.protos.intervene.v1 import common_pb2, generation_pb2

GREEDY = common_pb2.SamplingParams(temperature=0.0, max_reasoning_tokens=24, max_response_tokens=4)
SEEDED = common_pb2.SamplingParams(temperature=1.0, top_p=0.9, seed=99, max_reasoning_tokens=16, max_response_tokens=3)
PROMPTS = [
    "How do I bake bread?",
    "Give me three tips for learning the guitar, please, with examples.",
    "Why is the sky blue?",
    "Plan a picnic.",
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> GenerationBackend:
    folder = tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    settings = GenerationSettings(
        auth_disabled=True, model=str(folder), device="cpu", max_context_tokens=1024, consume_queue=False
    )
    instance = create_backend(settings)
    yield instance
    instance.close()


def _generate(prompt: str, sampling: common_pb2.SamplingParams = GREEDY, n: int = 1) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(prompts=[common_pb2.Prompt(text=prompt)], n=n, sampling=sampling)


def _continue(backend: GenerationBackend, prompt: str) -> generation_pb2.ContinueRequest:
    return generation_pb2.ContinueRequest(
        prefix=backend.context(common_pb2.Prompt(text=prompt)) + " we bake bread.",
        branches=[
            generation_pb2.ContinueBranch(id="a", text=" then"),
            generation_pb2.ContinueBranch(id="b", text=" Wait, maybe I should mix"),
            generation_pb2.ContinueBranch(id="c", text=""),
        ],
        n=2,
        sampling=GREEDY,
        in_reasoning=True,
    )


def _together(backend: GenerationBackend, calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls on threads, all queued before the scheduler takes any, so that they decode in one batch."""
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    before = backend.scheduler.queued()
    with backend.scheduler.hold():
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        while backend.scheduler.queued() < before + len(calls):
            time.sleep(0.01)
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_share_a_batch_and_answer_as_alone(backend: GenerationBackend) -> None:
    generates = [_generate(p) for p in PROMPTS] + [_generate(PROMPTS[0], SEEDED, n=2)]
    continues = [_continue(backend, p) for p in PROMPTS[:2]]
    alone = [backend.generate([r])[0] for r in generates] + [backend.continue_branches([r])[0] for r in continues]
    first = len(backend.scheduler.admissions)
    calls: list[Callable[[], object]] = [lambda r=r: backend.generate([r])[0] for r in generates]
    calls += [lambda r=r: backend.continue_branches([r])[0] for r in continues]
    together = _together(backend, calls)
    assert [_without_times(r) for r in together] == [_without_times(r) for r in alone]
    admitted = list(backend.scheduler.admissions)[first:]
    assert len({a.step for a in admitted}) == 1, "every request joined the same step's batch"
    assert sum(a.rows for a in admitted) == len(PROMPTS) + 2 + 2 * 6


def _without_times(response: object) -> object:
    if isinstance(response, generation_pb2.GenerateResponse):
        for rollout in response.rollouts:
            rollout.ClearField("created_at")
    return response


def _rows(backend: GenerationBackend, prompts: list[str], budget: int = 24, seed: int | None = None) -> list[Row]:
    sampling = Sampling(1.0 if seed else 0.0, 0.9, budget, 4, seed)
    return [
        Row(backend.context(common_pb2.Prompt(text=p)), i, True, sampling, derive_seed(seed, i))
        for i, p in enumerate(prompts)
    ]


def _manual(backend: GenerationBackend, capacity: int = 8, bulk_share: float = 0.25) -> Scheduler:
    """A scheduler over the back end's engine that runs only when the test calls `step()`."""
    return Scheduler(backend, capacity, bulk_share)  # type: ignore[arg-type]


def _drain(scheduler: Scheduler, *jobs: Job, limit: int = 500) -> None:
    for _ in range(limit):
        if all(job.future.done() for job in jobs):
            return
        scheduler.step()
    raise AssertionError("jobs did not finish")


def _alone(backend: GenerationBackend, rows: list[Row]) -> list[Decoded]:
    return backend.scheduler.decode(rows, "", None, RequestControl())


def test_rows_joining_and_leaving_a_running_batch_decode_as_alone(backend: GenerationBackend) -> None:
    long_rows = _rows(backend, PROMPTS[1:3], budget=40)
    short_rows = _rows(backend, [PROMPTS[0]], budget=6)
    seeded_rows = _rows(backend, [PROMPTS[3], PROMPTS[0]], budget=20, seed=7)
    expected = [_alone(backend, rows) for rows in (long_rows, short_rows, seeded_rows)]
    scheduler = _manual(backend)
    first = scheduler.submit(long_rows, "", None, RequestControl())
    for _ in range(5):
        scheduler.step()
    # Joins five tokens in, with a shorter cache than the running rows; finishes (and leaves) first.
    second = scheduler.submit(short_rows, "", None, RequestControl())
    scheduler.step()
    assert scheduler.stats().running == 3
    third = scheduler.submit(seeded_rows, "", None, RequestControl())
    _drain(scheduler, first, second, third)
    assert [first.future.result(), second.future.result(), third.future.result()] == expected


def test_longer_rows_joining_and_rows_leaving_mid_batch_decode_as_alone(backend: GenerationBackend) -> None:
    """A row longer than the running ones widens the batch's cache; a row that leaves from the middle has its slot
    filled by the last row (moved, not the batch copied)."""
    short_rows = _rows(backend, PROMPTS[2:4], budget=30)
    quick_rows = _rows(backend, [PROMPTS[0]], budget=2)
    sampling = Sampling(0.0, 1.0, 20, 3, None)
    long_text = backend.context(common_pb2.Prompt(text=PROMPTS[1])) + " we bake bread then mix dough." * 6
    long_rows = [Row(long_text, 0, True, sampling, None), Row(long_text + " rest", 0, True, sampling, None)]
    expected = [_alone(backend, rows) for rows in (short_rows, quick_rows, long_rows)]
    scheduler = _manual(backend)
    short = scheduler.submit(short_rows, "", None, RequestControl())
    for _ in range(4):
        scheduler.step()
    quick = scheduler.submit(quick_rows, "", None, RequestControl())
    scheduler.step()
    longer = scheduler.submit(long_rows, "", None, RequestControl())
    scheduler.step()
    assert scheduler.stats().running == 5, "all decode in one batch"
    _drain(scheduler, short, quick, longer)
    assert [short.future.result(), quick.future.result(), longer.future.result()] == expected


def test_interactive_work_is_admitted_before_queued_bulk_work(backend: GenerationBackend) -> None:
    scheduler = _manual(backend, capacity=4, bulk_share=0.5)
    bulk_a = scheduler.submit(_rows(backend, PROMPTS[:2]), "", None, BULK)
    bulk_b = scheduler.submit(_rows(backend, PROMPTS[2:]), "", None, BULK)
    interactive = scheduler.submit(_rows(backend, [PROMPTS[0]]), "", None, RequestControl())
    scheduler.step()
    order = [(a.job, a.priority, a.rows) for a in scheduler.admissions]
    # Interactive first, though it came last; bulk then takes its share (2 of 4) and the second bulk job waits.
    assert order == [(interactive.id, Priority.INTERACTIVE, 1), (bulk_a.id, Priority.BULK, 2)]
    assert (scheduler.stats().interactive_running, scheduler.stats().bulk_running, scheduler.stats().waiting) == (
        1,
        2,
        2,
    )
    _drain(scheduler, interactive)
    scheduler.step()
    assert scheduler.admissions[-1].job == bulk_b.id, "with no interactive work left, bulk takes the batch"
    _drain(scheduler, bulk_a, bulk_b)


def test_bulk_rows_pause_while_interactive_work_runs_and_resume_unchanged(backend: GenerationBackend) -> None:
    bulk_rows = _rows(backend, PROMPTS, budget=40)
    expected = _alone(backend, bulk_rows)
    scheduler = _manual(backend, capacity=4, bulk_share=0.25)
    bulk = scheduler.submit(bulk_rows, "", None, BULK)
    for _ in range(3):
        scheduler.step()
    assert scheduler.stats().bulk_running == 4
    interactive = scheduler.submit(_rows(backend, PROMPTS[:2], budget=4), "", None, RequestControl())
    scheduler.step()
    stats = scheduler.stats()
    assert (stats.interactive_running, stats.bulk_running, stats.paused) == (2, 1, 3)
    _drain(scheduler, interactive)
    scheduler.step()
    assert (scheduler.stats().bulk_running, scheduler.stats().paused) == (4, 0)
    _drain(scheduler, bulk)
    assert bulk.future.result() == expected, "pausing keeps the caches: bulk output is unchanged"


class _Switch:
    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


def test_a_caller_that_goes_away_loses_its_rows_at_the_next_step(backend: GenerationBackend) -> None:
    scheduler = _manual(backend)
    caller = _Switch()
    kept = scheduler.submit(_rows(backend, [PROMPTS[0]], budget=40), "", None, RequestControl())
    gone = scheduler.submit(_rows(backend, PROMPTS[1:], budget=40), "", None, RequestControl(is_active=caller))
    for _ in range(3):
        scheduler.step()
    assert scheduler.stats().running == 4
    caller.on = False
    scheduler.step()
    assert (scheduler.stats().running, scheduler.stats().cancelled) == (1, 1)
    with pytest.raises(Cancelled):
        gone.future.result(timeout=0)
    _drain(scheduler, kept)
    assert kept.future.result() == _alone(backend, _rows(backend, [PROMPTS[0]], budget=40))


def test_rows_that_stay_move_into_the_slots_of_a_caller_that_went_away(backend: GenerationBackend) -> None:
    """The rows that leave are ahead of those that stay, so the staying rows' cache is copied into their slots
    (in CI this copy once ran outside inference mode, raised, and killed the scheduler thread)."""
    scheduler = _manual(backend)
    caller = _Switch()
    gone = scheduler.submit(_rows(backend, PROMPTS[1:], budget=40), "", None, RequestControl(is_active=caller))
    kept = scheduler.submit(_rows(backend, [PROMPTS[0]], budget=40), "", None, RequestControl())
    for _ in range(3):
        scheduler.step()
    caller.on = False
    scheduler.step()
    assert (scheduler.stats().running, scheduler.stats().cancelled) == (1, 1)
    with pytest.raises(Cancelled):
        gone.future.result(timeout=0)
    _drain(scheduler, kept)
    assert kept.future.result() == _alone(backend, _rows(backend, [PROMPTS[0]], budget=40))


class _EngineWhoseSelectFails:
    """The back end's engine, except that removing rows from a batch raises: a bug in the engine's error path."""

    def __init__(self, engine: GenerationBackend) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def select(self, *args: object) -> None:
        raise RuntimeError("select failed")


def test_a_step_that_raises_fails_every_job_and_the_scheduler_goes_on(backend: GenerationBackend) -> None:
    scheduler = Scheduler(_EngineWhoseSelectFails(backend), 8, 0.25)  # type: ignore[arg-type]
    scheduler.start()
    try:
        caller = _Switch()
        with scheduler.hold():
            gone = scheduler.submit(_rows(backend, PROMPTS[1:], budget=40), "", None, RequestControl(is_active=caller))
            other = scheduler.submit(_rows(backend, [PROMPTS[0]], budget=40), "", None, RequestControl())
        while not scheduler.stats().running:
            time.sleep(0.01)
        caller.on = False
        with pytest.raises(RuntimeError, match="scheduler failed"):
            gone.future.result(timeout=60)
        with pytest.raises(RuntimeError, match="scheduler failed"):
            other.future.result(timeout=60)
        after = _rows(backend, [PROMPTS[2]], budget=8)
        assert scheduler.decode(after, "", None, RequestControl()) == _alone(backend, after)
    finally:
        scheduler.close()


def test_a_passed_deadline_cancels_queued_and_running_rows(backend: GenerationBackend) -> None:
    scheduler = _manual(backend)
    soon = RequestControl(deadline=time.monotonic() + 0.5)
    running = scheduler.submit(_rows(backend, [PROMPTS[0]], budget=40), "", None, soon)
    scheduler.step()
    expired = RequestControl(deadline=time.monotonic() - 1)
    queued = scheduler.submit(_rows(backend, [PROMPTS[1]]), "", None, expired)
    scheduler.step()
    assert expired.expired() and not expired.active()
    with pytest.raises(Cancelled):
        queued.future.result(timeout=0)
    assert not any(a.job == queued.id for a in scheduler.admissions), "an expired request is never prefilled"
    assert scheduler.stats().running == 1
    while not soon.expired():
        time.sleep(0.05)
    scheduler.step()
    assert scheduler.stats().running == 0 and scheduler.stats().cancelled == 2
    with pytest.raises(Cancelled):
        running.future.result(timeout=0)


def test_the_back_end_closes_cleanly(tmp_path: Path) -> None:
    folder = tiny_model(tmp_path / "model")
    settings = GenerationSettings(auth_disabled=True, model=str(folder), device="cpu", consume_queue=False)
    backend = create_backend(settings)
    [response] = backend.generate([_generate("Hi")])
    assert response.rollouts[0].reasoning
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.generate([_generate("Hi")])


def test_a_stream_reader_that_falls_behind_gets_the_backlog_in_one_message_per_segment(
    backend: GenerationBackend,
) -> None:
    request = generation_pb2.GenerateStreamRequest(prompt=common_pb2.Prompt(text=PROMPTS[0]), sampling=GREEDY)
    messages = backend.stream(request)
    first = next(messages)
    deadline = time.monotonic() + 60
    while backend.scheduler.queued():  # the whole rollout decodes while nobody reads
        assert time.monotonic() < deadline, "the rollout did not finish"
        time.sleep(0.01)
    rest = list(messages)
    *pieces, last = [first, *rest]
    assert len(rest) <= 3, "the backlog: at most the rest of the reasoning, the response, the rollout"
    reasoning = "".join(p.text for p in pieces if p.segment == common_pb2.SEGMENT_REASONING)
    response = "".join(p.text for p in pieces if p.segment == common_pb2.SEGMENT_RESPONSE)
    assert (reasoning, response) == (last.rollout.reasoning, last.rollout.response)
    assert GREEDY.max_reasoning_tokens > 3, "without coalescing the backlog would be a message per token"
