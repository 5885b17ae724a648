"""Checks of generation requests against the configured limits and the model's context.

Every failure is a `ServiceError` (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS) whose message names the field
and the limit, so that gRPC clients and queue producers learn what to change.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shared.protos.intervene.v1 import common_pb2, generation_pb2
from shared.rpc.errors import ServiceError

if TYPE_CHECKING:
    from shared.generation.backends.base import GenerationBackend

_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def field_error(field: str, message: str) -> ServiceError:
    """INVALID_ARGUMENT naming the field: "n: is 40; it must lie in [1, 16]"."""
    return ServiceError.invalid_argument(field, message)


def check_sampling(params: common_pb2.SamplingParams, backend: GenerationBackend, field: str = "sampling") -> None:
    settings = backend.settings
    if params.HasField("temperature") and not 0.0 <= params.temperature <= 2.0:
        raise field_error(f"{field}.temperature", f"is {params.temperature}; it must lie in [0, 2]")
    if params.HasField("top_p") and not 0.0 < params.top_p <= 1.0:
        raise field_error(f"{field}.top_p", f"is {params.top_p}; it must lie in (0, 1]")
    for name, limit in (
        ("max_reasoning_tokens", settings.limit_reasoning_tokens),
        ("max_response_tokens", settings.limit_response_tokens),
    ):
        if params.HasField(name):
            value = getattr(params, name)
            if not 0 <= value <= limit:
                raise field_error(f"{field}.{name}", f"is {value}; it must lie in [0, {limit}]")
    if len(params.stop) > settings.limit_stop_strings:
        raise field_error(
            f"{field}.stop", f"has {len(params.stop)} strings; the limit is {settings.limit_stop_strings}"
        )


def _check_n(n: int, backend: GenerationBackend) -> None:
    if not 0 <= n <= backend.settings.limit_n:
        raise field_error("n", f"is {n}; it must lie in [1, {backend.settings.limit_n}] (0 means 1)")


def check_generate(request: generation_pb2.GenerateRequest, backend: GenerationBackend) -> None:
    """Validate a Generate request's shape and sampling (context lengths are checked per prompt)."""
    limit = backend.settings.limit_prompts
    if not request.prompts:
        raise field_error("prompts", "is empty; send at least one prompt")
    if len(request.prompts) > limit:
        raise field_error("prompts", f"has {len(request.prompts)} prompts; the limit is {limit}")
    for index, prompt in enumerate(request.prompts):
        if not prompt.text.strip():
            raise field_error(f"prompts[{index}].text", "is empty")
    _check_n(request.n, backend)
    check_sampling(request.sampling, backend)


def check_continue(request: generation_pb2.ContinueRequest, backend: GenerationBackend) -> None:
    """Validate a Continue request's shape and sampling (context lengths are checked per branch)."""
    if not request.prefix:
        raise field_error("prefix", "is empty; send the exact text to continue")
    limit = backend.settings.limit_branches
    if len(request.branches) > limit:
        raise field_error("branches", f"has {len(request.branches)} branches; the limit is {limit}")
    _check_n(request.n, backend)
    check_sampling(request.sampling, backend)


def check_context(text: str, field: str, backend: GenerationBackend) -> None:
    """The text must leave room in the model's context for at least one generated token.

    Budgets that run past the context are not refused: the sequence ends there with finish_reason "length".
    """
    tokens = backend.count_tokens(text)
    limit = backend.context_limit
    if tokens >= limit:
        raise field_error(field, f"is {tokens} tokens once formatted; the model's context holds {limit}")


def check_adapter_name(name: str, path: str) -> None:
    if not _ADAPTER_NAME.match(name):
        raise field_error(
            "name",
            f"{name[:80]!r} is not a valid adapter name: 1-128 letters, digits, '.', '_' or '-' (e.g. policy-v3)",
        )
    if not path:
        raise field_error("path", "is empty; give the adapter's folder or hub id")


def already_exists(name: str) -> ServiceError:
    return ServiceError.already_exists(
        f"name: adapter {name!r} is already loaded; load new weights under a new versioned name (e.g. {name}-next)"
    )


def retired_adapter(name: str) -> ServiceError:
    """A LoadAdapter name that was loaded and unloaded before: engines would serve the old weights' cache."""
    return ServiceError.already_exists(
        f"name: adapter {name!r} was loaded before and unloaded; a name stands for one set of weights (cached "
        f"blocks are keyed by it), so load these under a new versioned name (e.g. {name}-next)"
    )


def not_loaded(name: str, known: list[str]) -> ServiceError:
    """An UnloadAdapter name that is not loaded."""
    return ServiceError.not_found(f"name: adapter {name[:80]!r} is not loaded (loaded: {', '.join(known) or 'none'})")


def unloadable_adapter(path: str, error: Exception) -> ServiceError:
    """A LoadAdapter path that holds no adapter the back end can load (the cause's text is not echoed)."""
    return field_error(
        "path",
        f"no LoRA adapter could be loaded from {path[:80]!r} ({type(error).__name__}): give a PEFT adapter folder "
        "the service can read, or a hub id it can reach",
    )


def unknown_adapter(name: str, known: list[str]) -> ServiceError:
    return ServiceError.not_found(f"adapter: {name[:80]!r} is not loaded (loaded: {', '.join(known) or 'none'})")
