"""`Periodic`: the step runs again and again on its own thread, a failed round does not end it, stop ends it."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from shared.periodic import Periodic


class Steps:
    """A step that fails in the ways given, one per round, then succeeds; `done` is set after `rounds` rounds."""

    def __init__(self, rounds: int, failures: list[BaseException]) -> None:
        self.rounds = rounds
        self.failures = list(failures)
        self.calls = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.calls += 1
        if self.calls >= self.rounds:
            self.done.set()
        if self.failures:
            raise self.failures.pop(0)


def test_failed_rounds_are_logged_and_the_next_round_runs(caplog: pytest.LogCaptureFixture) -> None:
    step = Steps(3, [redis.exceptions.ConnectionError("redis is away"), ValueError("a bug")])
    task = Periodic("unit-task", step, 0.01)
    with caplog.at_level(logging.DEBUG, logger="shared.periodic"):
        task.start()
        assert step.done.wait(30), f"only {step.calls} rounds ran"
        task.stop()
    messages = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert (logging.WARNING, "unit-task failed: redis is away") in messages
    assert (logging.ERROR, "unit-task failed") in messages


def test_run_first_runs_at_start_and_stop_ends_the_thread() -> None:
    step = Steps(1, [])
    # An interval no test waits out: only the round at start can run.
    task = Periodic("unit-first", step, 3600, run_first=True)
    task.start()
    assert step.done.wait(30)
    task.stop()
    assert task._thread is not None and not task._thread.is_alive()
    assert step.calls == 1


def test_redis_errors_log_at_the_given_level(caplog: pytest.LogCaptureFixture) -> None:
    step = Steps(2, [redis.exceptions.ConnectionError("redis is away")])
    task = Periodic("unit-quiet", step, 0.01, redis_error_level=logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="shared.periodic"):
        task.start()
        assert step.done.wait(30)
        task.stop()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "unit-quiet failed: redis is away")
    ]
