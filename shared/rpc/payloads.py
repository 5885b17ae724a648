"""Debug logging of each call's request and reply messages, installed only when `settings.log_text` is on.

Requests and replies carry prompts, reasoning and pairs (harmful text), so by default nothing of them reaches a
log. With INTERVENE_LOG_TEXT=true and INTERVENE_LOG_LEVEL=DEBUG, every authenticated call logs its request and
each reply message in protobuf text format, cut at `MAX_LOGGED_CHARS`, to the `intervene.rpc.payloads` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

log = logging.getLogger("intervene.rpc.payloads")

MAX_LOGGED_CHARS = 20_000


def _shown(message: Any) -> str:
    text = text_format.MessageToString(message, as_one_line=True) if isinstance(message, Message) else repr(message)
    return text if len(text) <= MAX_LOGGED_CHARS else f"{text[:MAX_LOGGED_CHARS]}... ({len(text)} chars)"


class PayloadLogInterceptor(grpc.ServerInterceptor):
    """Logs requests and replies at DEBUG (server-streaming and unary-request calls; others pass untouched)."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not log.isEnabledFor(logging.DEBUG):
            return handler
        method = details.method
        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            unary_unary = handler.unary_unary

            def logged_unary(request: Any, context: grpc.ServicerContext) -> Any:
                log.debug("%s request: %s", method, _shown(request))
                reply = unary_unary(request, context)
                log.debug("%s reply: %s", method, _shown(reply))
                return reply

            return grpc.unary_unary_rpc_method_handler(logged_unary, **codecs)
        if handler.unary_stream:
            unary_stream = handler.unary_stream

            def logged_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                log.debug("%s request: %s", method, _shown(request))
                for reply in unary_stream(request, context):
                    log.debug("%s reply: %s", method, _shown(reply))
                    yield reply

            return grpc.unary_stream_rpc_method_handler(logged_stream, **codecs)
        return handler
