"""OpenTelemetry tracing, configured by the standard OTEL_* variables and off unless they ask for it.

A service calls `configure("judge")` once at start (`shared.rpc.server.run_service` does). Tracing is on when
OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`), or when it is unset and OTEL_EXPORTER_OTLP_ENDPOINT
(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keeps it off.
The `otlp` exporter speaks OTLP over HTTP/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, the default), so
it needs no second gRPC stack beside the services' own; its endpoint, headers, timeout and the batch processor
read their usual OTEL_* variables. The service name is OTEL_SERVICE_NAME, else `intervene-<service>`; the sampler
is OTEL_TRACES_SAMPLER (parent-based always-on by default); OTEL_RESOURCE_ATTRIBUTES adds attributes.

Everything else calls the small API below. While tracing is off each call returns at once (no span objects, no
context switches), so leaving the instrumentation in costs nothing measurable. The OpenTelemetry packages are the
`tracing` extra; without them tracing stays off, with a warning when the variables ask for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger("intervene.tracing")

_enabled = False
_provider: Any = None
_KINDS: dict[str, Any] = {}

EXPORTERS = ("otlp", "console")


def _exporter_names() -> list[str]:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = os.environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = "otlp" if endpoint else "none"
    chosen = [name.strip().lower() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in (*EXPORTERS, "none")]
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER={names!r}: unknown exporter {unknown[0]!r}; use otlp, console or none")
    return [name for name in chosen if name != "none"]


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Intervene exports OTLP over http/protobuf only "
            "(point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port, usually 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure(service: str) -> bool:
    """Installs the tracer provider the environment asks for; returns whether tracing is on. Idempotent."""
    global _enabled, _provider
    if _enabled:
        return True
    names = _exporter_names()
    if not names:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables ask for tracing but the OpenTelemetry packages (the `tracing` extra) are missing")
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or f"intervene-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for exporter in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    trace.set_tracer_provider(provider)
    _KINDS.update({kind.name.lower(): kind for kind in trace.SpanKind})
    _provider, _enabled = provider, True
    log.info("tracing on: service %s, exporters %s", name, ", ".join(names))
    return True


def enabled() -> bool:
    """Whether spans are being recorded in this process."""
    return _enabled


def shutdown() -> None:
    """Exports the spans still buffered and stops the exporters (also done at interpreter exit)."""
    global _enabled
    if _provider is not None:
        _provider.shutdown()
    _enabled = False


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("intervene")


def _context(parent: Mapping[str, str] | None) -> Any:
    if not parent:
        return None  # the current context
    from opentelemetry import propagate

    return propagate.extract(dict(parent))


def start_span(
    name: str,
    kind: str = "internal",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """A started span (not made current), child of the context in the `parent` carrier, else of the current span;
    None while tracing is off. End it with `end_span`."""
    if not _enabled:
        return None
    clean = {key: value for key, value in (attributes or {}).items() if value not in (None, "")}
    return _tracer().start_span(name, context=_context(parent), kind=_KINDS[kind], attributes=clean)


def end_span(span: Any, error: str | None = None) -> None:
    """Ends `span` (None: nothing to do); `error` marks it failed with that short, text-free description."""
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


@contextlib.contextmanager
def use_span(span: Any) -> Iterator[None]:
    """Makes `span` the current span inside the block (None: the block runs as is)."""
    if span is None:
        yield
        return
    from opentelemetry import trace

    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield


@contextlib.contextmanager
def span(
    name: str,
    kind: str = "internal",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span around the block, current inside it; an exception marks it failed by its type alone (messages can
    quote requests)."""
    started = start_span(name, kind, parent, attributes)
    if started is None:
        yield None
        return
    error = None
    try:
        with use_span(started):
            yield started
    except BaseException as exception:
        error = type(exception).__name__
        raise
    finally:
        end_span(started, error)


def carrier(span: Any = None) -> dict[str, str]:
    """The W3C trace context (traceparent, tracestate) of `span`, else of the current span; {} while off."""
    if not _enabled:
        return {}
    from opentelemetry import propagate, trace

    out: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(out, context=context)
    return out


def current_ids() -> dict[str, str]:
    """trace_id and span_id (hex) of the current span, for log lines; {} while off or outside a span."""
    if not _enabled:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
