"""SIGTERM / SIGINT handling for `run_service`: the first signal starts a graceful drain, a second one
cuts the drain short.

Kubernetes sends SIGTERM, waits `terminationGracePeriodSeconds`, then SIGKILLs: `drain_seconds` must fit
inside that period. Signal handlers can only be installed from the main thread.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("intervene.rpc.shutdown")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """Records the first stop signal; calls `on_second` if another arrives while the service drains."""

    def __init__(self, on_second: Callable[[], None]) -> None:
        self._received = threading.Event()
        self._on_second = on_second
        self._previous: dict[int, object] = {}

    def install(self) -> StopSignal:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Puts back the handlers that were there before `install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._received.is_set():
            log.warning("%s during drain: stopping now, in-flight calls are cancelled", name)
            self._on_second()
            return
        log.info("%s received: draining", name)
        self._received.set()

    def wait(self) -> None:
        """Blocks until the first stop signal."""
        # A timed wait keeps the main thread returning to the interpreter, where signal handlers run.
        while not self._received.wait(0.5):
            pass
