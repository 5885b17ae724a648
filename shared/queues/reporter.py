"""Publishes the lag of a service's streams as the `intervene_queue_lag` gauge, the autoscaling signal."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

from shared.queues.lag import stream_lag

log = logging.getLogger(__name__)


class LagReporter:
    """A background task: every `interval_s`, sets `publish(stream, group, lag + pending)` for each group."""

    def __init__(
        self,
        client: redis.Redis,
        streams: Sequence[str],
        publish: Callable[[str, str, float], None],
        interval_s: float = 5.0,
    ) -> None:
        self._client = client
        self._streams = list(streams)
        self._publish = publish
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report_once(self) -> None:
        for stream in self._streams:
            for group in stream_lag(self._client, stream).groups:
                self._publish(stream, group.group, group.backlog)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.report_once()
            except redis.exceptions.RedisError as error:
                log.debug("queue lag not reported: %s", error)
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="queue-lag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
