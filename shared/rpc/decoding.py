"""Requests whose bytes do not parse get INVALID_ARGUMENT naming the field, not INTERNAL.

gRPC's Python server parses a request before any interceptor's code runs, and answers a parse failure
(invalid UTF-8 in a string field, a truncated message, nesting past protobuf's recursion limit, bytes that are
no message at all) with INTERNAL "Exception deserializing request!" — to unauthenticated callers too.
`RequestDecodingInterceptor` gives each handler a deserializer that hands the failure to the call instead, so
the call first passes the bearer-token check like any other and then ends with INVALID_ARGUMENT: the path of
the field when it is bad UTF-8 (`traces[1].reasoning: is not valid UTF-8 ...`), else what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

from shared.rpc.errors import ServiceError
from shared.rpc.wire import bad_utf8_field


@dataclass(frozen=True)
class Undecodable:
    """A request that did not parse; `field` names the culprit when it is bad UTF-8."""

    message_type: str
    field: str | None
    reason: str

    def error(self) -> ServiceError:
        if self.field is not None:
            return ServiceError.invalid_argument(self.field, "is not valid UTF-8: send text encoded as UTF-8")
        return ServiceError.invalid_argument(
            "request",
            f"is not a valid {self.message_type} message ({self.reason}): "
            "send it serialized by a protobuf library from the published protos",
        )


def _input_type(method: str) -> Descriptor | None:
    """The request message type of "/package.Service/Method", from the default descriptor pool."""
    try:
        return descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", ".")).input_type
    except KeyError:
        return None


def lenient(deserializer: Callable[[bytes], Any], descriptor: Descriptor | None) -> Callable[[bytes], Any]:
    """`deserializer`, except that bytes it cannot parse come back as an `Undecodable` instead of raising."""
    name = descriptor.full_name if descriptor is not None else "request"

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            # The exception's text can quote the request; only its kind is kept.
            field = bad_utf8_field(data, descriptor) if descriptor is not None else None
            return Undecodable(name, field, f"{type(error).__name__}: truncated, malformed or nested too deeply")

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise request.error()
    return request


class RequestDecodingInterceptor(grpc.ServerInterceptor):
    """Swaps each handler's request deserializer for a `lenient` one and refuses what it could not parse.

    Put it innermost in the chain (after auth and error mapping): auth then runs before the refusal, and the
    error interceptor turns the refusal into INVALID_ARGUMENT.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        codecs = {
            "request_deserializer": lenient(handler.request_deserializer, _input_type(details.method)),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            unary_unary = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: unary_unary(_checked(request), context), **codecs
            )
        if handler.unary_stream:
            unary_stream = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: unary_stream(_checked(request), context), **codecs
            )

        def checked_all(requests: Iterator[Any]) -> Iterator[Any]:
            return (_checked(request) for request in requests)

        if handler.stream_unary:
            stream_unary = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda requests, context: stream_unary(checked_all(requests), context), **codecs
            )
        stream_stream = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda requests, context: stream_stream(checked_all(requests), context), **codecs
        )
