"""Publishes the position of a service's streams as queue gauges: lag, pending, length and dead letters.

Lag plus pending is the autoscaling signal of a stage; a growing lag or any dead letter is what the chart's
alerts (charts/intervene/templates/prometheusrule.yaml) watch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import redis

from shared.periodic import Periodic
from shared.queues.lag import stream_lag


class QueueGauges(Protocol):
    """Where the numbers go (`shared.rpc.metrics.ServiceMetrics`)."""

    def set_queue_lag(self, stream: str, group: str, lag: float, pending: float = 0) -> None: ...

    def set_stream(self, stream: str, length: float, dead_letters: float) -> None: ...


class LagReporter:
    """A background task: every `interval_s` (the first time at start), publishes each stream's length and dead
    letters and each of its consumer groups' lag and pending entries."""

    def __init__(
        self, client: redis.Redis, streams: Sequence[str], gauges: QueueGauges, interval_s: float = 5.0
    ) -> None:
        self._client = client
        self._streams = list(streams)
        self._gauges = gauges
        # Redis being away is what the health checks report; here it only means no numbers this round.
        self._task = Periodic(
            "queue-lag",
            self.report_once,
            interval_s,
            run_first=True,
            redis_error_level=logging.DEBUG,
            stop_timeout_s=5.0,
        )

    def report_once(self) -> None:
        for stream in self._streams:
            report = stream_lag(self._client, stream)
            self._gauges.set_stream(stream, report.length, report.dead_letters)
            for group in report.groups:
                self._gauges.set_queue_lag(stream, group.group, group.lag, group.pending)

    def start(self) -> None:
        self._task.start()

    def stop(self) -> None:
        self._task.stop()
