"""Prometheus metrics of a service: RPC counts, latency, errors, in-flight calls and queue lag.

Each server gets its own `CollectorRegistry`, so several servers in one process (the tests) do not clash.
Exposed on `settings.metrics_port` (`/metrics`) when that is not 0. Queue consumers report their lag with
`ServiceMetrics.set_queue_lag(stream, group, entries)`: it is the autoscaling signal of DESIGN.md §2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.rpc.interceptors import HandlerInterceptor, is_infrastructure

# Generation calls run for minutes on a CPU; the default buckets stop at 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServiceMetrics:
    """The metric objects of one server, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "intervene_rpc_requests",
            "RPCs finished, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "intervene_rpc_latency_seconds",
            "RPC duration until the last response, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "intervene_rpc_errors",
            "RPCs that ended with a status other than OK, by code.",
            ["code"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "intervene_rpc_in_flight", "RPCs being served now, by method.", ["method"], registry=self.registry
        )
        self.queue_lag = Gauge(
            "intervene_queue_lag",
            "Entries of a stream not yet delivered to a consumer group.",
            ["stream", "group"],
            registry=self.registry,
        )

    def set_queue_lag(self, stream: str, group: str, entries: float) -> None:
        """Records the lag of `group` on `stream`."""
        self.queue_lag.labels(stream=stream, group=group).set(entries)

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Records one finished RPC."""
        self.requests.labels(method=method, code=code.name).inc()
        self.latency.labels(method=method).observe(seconds)
        if code != grpc.StatusCode.OK:
            self.errors.labels(code=code.name).inc()


def _final_code(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


class MetricsInterceptor(HandlerInterceptor):
    """Counts and times every RPC of the service's own API (health and reflection are left out)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def applies_to(self, method: str) -> bool:
        return not is_infrastructure(method)

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        gauge = self.metrics.in_flight.labels(method=method)
        gauge.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            response = call()
            code = _final_code(context, grpc.StatusCode.OK)
            return response
        except BaseException:
            code = _final_code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            gauge.dec()
            self.metrics.observe(method, code, time.perf_counter() - started)

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        gauge = self.metrics.in_flight.labels(method=method)
        gauge.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            yield from call()
            code = _final_code(context, grpc.StatusCode.OK)
        except GeneratorExit:
            # The client went away mid-stream (or the server stopped): gRPC closes the generator.
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = _final_code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            gauge.dec()
            self.metrics.observe(method, code, time.perf_counter() - started)
