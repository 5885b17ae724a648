"""Server-interceptor plumbing and the error-mapping interceptor.

gRPC's Python server interceptors only see the method name before the call; to act around the call itself
(map its exception, time it, check its metadata) an interceptor has to wrap the method handler's behaviour.
`HandlerInterceptor` does that once for all four call shapes, so auth, metrics and error mapping each
implement just `around_unary` and `around_stream`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from shared.rpc.errors import status_for_exception
from shared.rpc.logs import describe_exception

log = logging.getLogger("intervene.rpc")

# Health checks and reflection: no token (kubelet probes and grpcurl carry none), no RPC metrics.
INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def is_infrastructure(method: str) -> bool:
    """Whether `method` belongs to the health or reflection services rather than to the service's own API."""
    return method.startswith(INFRASTRUCTURE_PREFIXES)


class HandlerInterceptor(grpc.ServerInterceptor):
    """Wraps each handler so that `around_unary` / `around_stream` run around the servicer method."""

    def applies_to(self, method: str) -> bool:
        """Override to leave some methods unwrapped."""
        return True

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        """Runs a call with a single response; `call()` runs the rest of the chain and returns it."""
        return call()

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        """Runs a call with streamed responses; `call()` returns the response iterator."""
        yield from call()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        method = details.method
        if handler is None or not self.applies_to(method):
            return handler
        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            inner = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: self.around_unary(method, lambda: inner(request, context), context),
                **codecs,
            )
        if handler.unary_stream:
            inner = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: self.around_stream(method, lambda: inner(request, context), context),
                **codecs,
            )
        if handler.stream_unary:
            inner = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda requests, context: self.around_unary(method, lambda: inner(requests, context), context),
                **codecs,
            )
        inner = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda requests, context: self.around_stream(method, lambda: inner(requests, context), context),
            **codecs,
        )


def _already_aborted(context: grpc.ServicerContext) -> bool:
    # context.abort() sets the code and raises a bare Exception: that status is final, not ours to remap.
    code = context.code()
    return code is not None and code != grpc.StatusCode.OK


class ErrorInterceptor(HandlerInterceptor):
    """Turns exceptions into status codes (see `errors.status_for_exception`); logs unexpected ones with
    their traceback, whose exception messages are redacted unless `log_text`."""

    def __init__(self, log_text: bool = False) -> None:
        self._log_text = log_text

    def _abort(self, method: str, error: Exception, context: grpc.ServicerContext) -> None:
        if _already_aborted(context):
            raise error
        code, message, unexpected = status_for_exception(error)
        if unexpected:
            # The traceback, never the request: the request may hold harmful text.
            log.error("unexpected error in %s\n%s", method, describe_exception(error, self._log_text))
        else:
            log.debug("%s -> %s", method, code.name)
        context.abort(code, message)

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        try:
            return call()
        except Exception as error:
            self._abort(method, error, context)

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        try:
            yield from call()
        except Exception as error:
            self._abort(method, error, context)
