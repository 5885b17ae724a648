"""A span for every RPC: the server side continues the caller's trace, the client side passes it on.

The W3C trace context travels in the call's metadata (`traceparent`, `tracestate`). Server spans are named
`package.Service/Method` (OpenTelemetry's RPC conventions) and are current while the servicer runs, so the calls
it makes to other services (SafeRollout to generation, judge and pair store) and the queue entries it produces
continue the same trace. Both interceptors do nothing while tracing is off (`shared.observability.tracing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

from shared.observability import tracing
from shared.rpc.interceptors import HandlerInterceptor, is_infrastructure

# Server-side codes that mean the server failed (OpenTelemetry's gRPC conventions); others are the caller's doing.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _attributes(method: str) -> dict[str, str]:
    service, _, name = method.strip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _code(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else default


def _finish(span: Any, code: grpc.StatusCode, errors: frozenset[grpc.StatusCode] | None = None) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    failed = code != grpc.StatusCode.OK and (errors is None or code in errors)
    tracing.end_span(span, code.name if failed else None)


class ServerTracingInterceptor(HandlerInterceptor):
    """A SERVER span around every call of the service's own API, child of the caller's span when it sent one."""

    def applies_to(self, method: str) -> bool:
        return tracing.enabled() and not is_infrastructure(method)

    def _start(self, method: str, context: grpc.ServicerContext) -> Any:
        carrier = {}
        for key, value in context.invocation_metadata() or ():
            if key in ("traceparent", "tracestate") and isinstance(value, str):
                carrier[key] = value
        return tracing.start_span(method.strip("/"), "server", carrier, _attributes(method))

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        span = self._start(method, context)
        code = grpc.StatusCode.UNKNOWN
        try:
            with tracing.use_span(span):
                response = call()
            code = _code(context, grpc.StatusCode.OK)
            return response
        except BaseException:
            code = _code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            _finish(span, code, SERVER_ERRORS)

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        span = self._start(method, context)
        code = grpc.StatusCode.UNKNOWN
        try:
            # gRPC pulls a server stream from one thread, so the span stays current between messages.
            with tracing.use_span(span):
                yield from call()
            code = _code(context, grpc.StatusCode.OK)
        except GeneratorExit:
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = _code(context, grpc.StatusCode.UNKNOWN)
            raise
        finally:
            _finish(span, code, SERVER_ERRORS)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class ClientTracingInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """A CLIENT span per call, ended when the call completes (a stream: when its last message arrived), whose
    context goes to the server in the call's metadata."""

    def _call(self, continuation: Callable, details: grpc.ClientCallDetails, request: Any) -> Any:
        if not tracing.enabled():
            return continuation(details, request)
        span = tracing.start_span(details.method.strip("/"), "client", attributes=_attributes(details.method))
        metadata = [*(details.metadata or ()), *tracing.carrier(span).items()]
        try:
            call = continuation(_Details(details, metadata), request)
        except BaseException as error:
            tracing.end_span(span, type(error).__name__)
            raise
        call.add_done_callback(lambda done: _finish(span, done.code() or grpc.StatusCode.UNKNOWN))
        return call

    def intercept_unary_unary(self, continuation: Callable, details: grpc.ClientCallDetails, request: Any) -> Any:
        return self._call(continuation, details, request)

    def intercept_unary_stream(self, continuation: Callable, details: grpc.ClientCallDetails, request: Any) -> Any:
        return self._call(continuation, details, request)

    def intercept_stream_unary(
        self, continuation: Callable, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return self._call(continuation, details, requests)

    def intercept_stream_stream(
        self, continuation: Callable, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return self._call(continuation, details, requests)
