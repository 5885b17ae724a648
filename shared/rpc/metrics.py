"""Prometheus metrics of a service: the standard gRPC server metrics, queue gauges, and the domain metrics.

The RPC metrics have the names and labels py-grpc-prometheus and go-grpc-prometheus export, so stock gRPC
dashboards and alerts work unchanged: `grpc_server_started_total`, `grpc_server_handled_total` (with `grpc_code`,
the status code's name: OK, INVALID_ARGUMENT, ...), the `grpc_server_handling_seconds` histogram, and
`grpc_server_msg_received_total` / `grpc_server_msg_sent_total` (messages of every call, so streams show their
length); each labelled `grpc_type` (UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI_STREAM), `grpc_service` and
`grpc_method`. Health and reflection calls are left out. The services have no client-streaming RPCs, so a call
is UNARY or SERVER_STREAM.

Each server gets its own `CollectorRegistry`, so several servers in one process (the tests) do not clash; the
process-wide domain metrics (`shared.observability.domain`) are served with it. Exposed on
`settings.metrics_port` (`/metrics`) when that is not 0. `LagReporter` sets the queue gauges, the autoscaling
signal of DESIGN.md §2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.observability import domain
from shared.rpc.interceptors import HandlerInterceptor, is_infrastructure

# Generation calls run for minutes on a CPU; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class _DomainMetrics:
    """Serves the process-wide domain registry from a server's registry."""

    def collect(self) -> Iterator[Any]:
        yield from domain.REGISTRY.collect()


class ServiceMetrics:
    """The metric objects of one server, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.started = Counter(
            "grpc_server_started", "Total number of RPCs started on the server.", RPC_LABELS, registry=self.registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            [*RPC_LABELS, "grpc_code"],
            registry=self.registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            RPC_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.received = Counter(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            RPC_LABELS,
            registry=self.registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            RPC_LABELS,
            registry=self.registry,
        )
        self.queue_lag = Gauge(
            "intervene_queue_lag_entries",
            "Entries of a stream not yet delivered to a consumer group.",
            ["stream", "group"],
            registry=self.registry,
        )
        self.queue_pending = Gauge(
            "intervene_queue_pending_entries",
            "Entries of a stream delivered to a consumer group and not yet acknowledged.",
            ["stream", "group"],
            registry=self.registry,
        )
        self.queue_length = Gauge(
            "intervene_queue_length_entries",
            "Entries a stream holds (its outstanding work: acknowledged entries are deleted).",
            ["stream"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "intervene_queue_dead_letters",
            "Entries waiting in a stream's dead-letter stream (`intervene queues dead STREAM`).",
            ["stream"],
            registry=self.registry,
        )
        self.registry.register(_DomainMetrics())

    def set_queue_lag(self, stream: str, group: str, lag: float, pending: float = 0) -> None:
        """Records how far `group` is behind on `stream`: not yet delivered, and delivered but unacknowledged."""
        self.queue_lag.labels(stream=stream, group=group).set(lag)
        self.queue_pending.labels(stream=stream, group=group).set(pending)

    def set_stream(self, stream: str, length: float, dead_letters: float) -> None:
        """Records a stream's length and its dead letters."""
        self.queue_length.labels(stream=stream).set(length)
        self.dead_letters.labels(stream=stream).set(dead_letters)


def rpc_labels(method: str, grpc_type: str) -> dict[str, str]:
    """The standard labels of "/package.Service/Method"."""
    service, _, name = method.strip("/").partition("/")
    return {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": name}


def _final_code(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


class MetricsInterceptor(HandlerInterceptor):
    """Counts and times every RPC of the service's own API (health and reflection are left out)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def applies_to(self, method: str) -> bool:
        return not is_infrastructure(method)

    def _begin(self, method: str, grpc_type: str) -> dict[str, str]:
        labels = rpc_labels(method, grpc_type)
        self.metrics.started.labels(**labels).inc()
        if grpc_type in ("UNARY", "SERVER_STREAM"):
            self.metrics.received.labels(**labels).inc()
        return labels

    def _end(self, labels: dict[str, str], code: grpc.StatusCode, started: float) -> None:
        self.metrics.handled.labels(**labels, grpc_code=code.name).inc()
        self.metrics.handling.labels(**labels).observe(time.perf_counter() - started)

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        labels = self._begin(method, "UNARY")
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            response = call()
            code = _final_code(context, grpc.StatusCode.OK)
            if code == grpc.StatusCode.OK:
                self.metrics.sent.labels(**labels).inc()
            return response
        except BaseException:
            code = _final_code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            self._end(labels, code, started)

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        labels = self._begin(method, "SERVER_STREAM")
        sent = self.metrics.sent.labels(**labels)
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            for message in call():
                sent.inc()
                yield message
            code = _final_code(context, grpc.StatusCode.OK)
        except GeneratorExit:
            # The client went away mid-stream (or the server stopped): gRPC closes the generator.
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = _final_code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            self._end(labels, code, started)
