"""Errors a servicer raises, and how any exception becomes a gRPC status.

A servicer raises `ServiceError.invalid_argument("prompt", "is 5000 characters; the limit is 4000")` and the
error interceptor (`interceptors.ErrorInterceptor`) answers with that code and message. Redis outages become
UNAVAILABLE, so clients retry; anything unexpected becomes INTERNAL with a generic message, because exception
text can quote the request (harmful text) and must not reach clients or logs verbatim.
"""

from __future__ import annotations

import grpc
import redis


class ServiceError(Exception):
    """An error with the gRPC status code the client should see; the message must say what to fix."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r})"

    @classmethod
    def invalid_argument(cls, field: str, message: str) -> ServiceError:
        """A bad request field: the message is prefixed with the field's name ("prompt: is empty")."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")

    @classmethod
    def not_found(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.NOT_FOUND, message)

    @classmethod
    def already_exists(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.ALREADY_EXISTS, message)

    @classmethod
    def unavailable(cls, message: str) -> ServiceError:
        """A dependency is down or overloaded; the client may retry with backoff."""
        return cls(grpc.StatusCode.UNAVAILABLE, message)

    @classmethod
    def deadline_exceeded(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.DEADLINE_EXCEEDED, message)

    @classmethod
    def unauthenticated(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.UNAUTHENTICATED, message)

    @classmethod
    def permission_denied(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.PERMISSION_DENIED, message)

    @classmethod
    def failed_precondition(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.FAILED_PRECONDITION, message)

    @classmethod
    def resource_exhausted(cls, message: str) -> ServiceError:
        """Back-pressure (a full queue, too many jobs): the client should slow down and retry."""
        return cls(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


INTERNAL_MESSAGE = "internal error; the server log has the details"

# A failed call to another service keeps these codes, so the retry decision travels back to our client.
_PASSED_THROUGH = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def status_for_exception(error: BaseException) -> tuple[grpc.StatusCode, str, bool]:
    """(code, client-facing message, whether it is unexpected and its traceback belongs in the log)."""
    if isinstance(error, ServiceError):
        return error.code, error.message, False
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return grpc.StatusCode.UNAVAILABLE, f"redis unreachable: {error}", False
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call) and error.code() in _PASSED_THROUGH:
        return error.code(), f"upstream call failed: {error.details()}", False
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, True
