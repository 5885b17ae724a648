"""The GenerationService RPCs: thin calls into the configured back end, which validates and decodes.

Every call is interactive work bound to its RPC (`RequestControl.for_rpc`): the back end serves it before queue
work and stops decoding it within one step once the client cancels or its deadline passes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from shared.generation.backends.base import GenerationBackend
from shared.generation.control import Cancelled, RequestControl
from shared.observability import domain
from shared.protos.intervene.v1 import common_pb2, generation_pb2, generation_pb2_grpc
from shared.rpc.errors import ServiceError

_T = TypeVar("_T")


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, backend: GenerationBackend) -> None:
        self._backend = backend

    def Generate(self, request: generation_pb2.GenerateRequest, context: grpc.ServicerContext):
        control = RequestControl.for_rpc(context)
        [response] = _controlled(control, lambda: self._backend.generate([request], control=control))
        # Ids are unique per call: the same prompt sampled twice gives two rollouts.
        call = os.urandom(8).hex()
        for index, rollout in enumerate(response.rollouts):
            rollout.id = _rollout_id(call, index)
            _count("rollout", rollout)
        return response

    def GenerateStream(
        self, request: generation_pb2.GenerateStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[generation_pb2.GenerateStreamResponse]:
        control = RequestControl.for_rpc(context)
        messages = self._backend.stream(request, control=control)
        while (message := _controlled(control, lambda: next(messages, None))) is not None:
            if message.HasField("rollout"):
                message.rollout.id = _rollout_id(os.urandom(8).hex(), 0)
                _count("rollout", message.rollout)
            yield message

    def Continue(self, request: generation_pb2.ContinueRequest, context: grpc.ServicerContext):
        control = RequestControl.for_rpc(context)
        [response] = _controlled(control, lambda: self._backend.continue_branches([request], control=control))
        for continuation in response.continuations:
            _count("continuation", continuation)
        return response

    def LoadAdapter(self, request: generation_pb2.LoadAdapterRequest, context: grpc.ServicerContext):
        return generation_pb2.LoadAdapterResponse(adapter=self._backend.load_adapter(request.name, request.path))

    def ListAdapters(self, request: generation_pb2.ListAdaptersRequest, context: grpc.ServicerContext):
        return generation_pb2.ListAdaptersResponse(adapters=self._backend.list_adapters())

    def UnloadAdapter(self, request: generation_pb2.UnloadAdapterRequest, context: grpc.ServicerContext):
        return generation_pb2.UnloadAdapterResponse(adapter=self._backend.unload_adapter(request.name))


def _count(kind: str, generated: common_pb2.Rollout | generation_pb2.Continuation) -> None:
    domain.count_rollout(kind, "rpc", generated.finish_reason, generated.reasoning_tokens, generated.response_tokens)


def _controlled(control: RequestControl, call: Callable[[], _T]) -> _T:
    """`call()`, with the back end's `Cancelled` as the status the client (if still there) should see."""
    try:
        return call()
    except Cancelled as error:
        if control.expired():
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed during decoding"
            ) from error
        raise ServiceError(grpc.StatusCode.CANCELLED, "the call was cancelled during decoding") from error


def _rollout_id(call: str, index: int) -> str:
    return hashlib.sha256(f"generate:{call}:{index}".encode()).hexdigest()[:32]
