"""A background task that runs one function every few seconds on its own thread, until it is stopped.

Services run several beside their servers (the dead-letter sweep and job feeder of the intervention service, the
queue-lag reporter of every service); each is a `BackgroundTask` of `shared.rpc.server`. A failed round is logged
and the next one retries: a Redis error (Redis down or restarting) at `redis_error_level`, anything else with its
traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

import redis

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Periodic:
    """Runs `step` every `every_s` seconds (first after one interval, or at once with `run_first`)."""

    name: str
    step: Callable[[], object]
    every_s: float
    _: KW_ONLY
    run_first: bool = False
    redis_error_level: int = logging.WARNING
    stop_timeout_s: float = 10.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stop_timeout_s)

    def _run(self) -> None:
        if self.run_first:
            self._round()
        while not self._stop.wait(self.every_s):
            self._round()

    def _round(self) -> None:
        try:
            self.step()
        except redis.exceptions.RedisError as error:
            log.log(self.redis_error_level, "%s failed: %s", self.name, error)
        except Exception:
            log.exception("%s failed", self.name)
