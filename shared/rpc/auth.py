"""Bearer-token authentication of every RPC except health and reflection.

Clients send `authorization: Bearer <token>` metadata (`client.connect(..., token=...)` does it). Two scopes:

- the call token (settings.resolved_token()) grants every method outside `read_scope_methods`;
- the read token (settings.resolved_read_token()) grants everything, including `read_scope_methods` (the
  methods that return stored harmful text, such as the pair store's ExportPairs).

When no read token is configured, `read_scope_methods` are refused with PERMISSION_DENIED for every caller:
holding the call token must never be enough to read the stored text, so a deployment that forgets the read
token fails closed. `auth_disabled=True` skips all of this (local development; `server` logs a warning).
Tokens are compared with `hmac.compare_digest` so the time taken does not reveal how much of a guess matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from shared.rpc.interceptors import HandlerInterceptor, is_infrastructure


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, or None when there is none."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def _matches(presented: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


class BearerAuthInterceptor(HandlerInterceptor):
    """Refuses calls without a valid bearer token: UNAUTHENTICATED, or PERMISSION_DENIED for a scope it lacks."""

    def __init__(self, token: str, read_token: str | None, read_scope_methods: set[str] | frozenset[str]) -> None:
        self._token = token
        self._read_token = read_token
        self._read_scope_methods = frozenset(read_scope_methods)

    def applies_to(self, method: str) -> bool:
        return not is_infrastructure(method)

    def check(self, method: str, context: grpc.ServicerContext) -> None:
        """Aborts the call unless its metadata carries a token that grants `method`."""
        presented = bearer_token(context.invocation_metadata())
        if presented is None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing bearer token: send metadata 'authorization: Bearer <token>'"
            )
        # Both comparisons always run, so timing does not tell which token a guess was close to.
        is_read = _matches(presented, self._read_token)
        is_call = _matches(presented, self._token)
        if method in self._read_scope_methods:
            if self._read_token is None:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method} needs the read-scope token and this server has none configured "
                    "(set INTERVENE_READ_TOKEN or INTERVENE_READ_TOKEN_FILE on the server)",
                )
            if is_read:
                return
            if is_call:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method} needs the read-scope token; the call token is not enough",
                )
        elif is_read or is_call:
            return
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")

    def around_unary(self, method: str, call: Callable[[], Any], context: grpc.ServicerContext) -> Any:
        self.check(method, context)
        return call()

    def around_stream(
        self, method: str, call: Callable[[], Iterator[Any]], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        self.check(method, context)
        yield from call()
