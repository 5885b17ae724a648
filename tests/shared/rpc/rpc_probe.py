"""A tiny PairStoreService servicer whose behaviour is chosen by the request, and the settings/spec around it.

The servicer is not the pair store: it only exists to make the scaffold raise each kind of error, stream,
block, and check field limits, over real gRPC on loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import redis

from shared.config.base import ServiceSettings
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.errors import ServiceError
from shared.rpc.limits import check_text_field
from shared.rpc.server import ServiceSpec

SERVICE = pairstore_pb2.DESCRIPTOR.services_by_name["PairStoreService"].full_name
LIST_PAIRS = f"/{SERVICE}/ListPairs"
TOKEN = "call-token-for-tests"
READ_TOKEN = "read-token-for-tests"
PROMPT_LIMIT = 100

ERRORS: dict[str, Callable[[], Exception]] = {
    "invalid": lambda: ServiceError.invalid_argument("id", "must be 64 hex characters"),
    "not_found": lambda: ServiceError.not_found("pair 'not_found' does not exist"),
    "exists": lambda: ServiceError.already_exists("pair exists"),
    "unavailable": lambda: ServiceError.unavailable("generation is overloaded"),
    "deadline": lambda: ServiceError.deadline_exceeded("judge took too long"),
    "unauthenticated": lambda: ServiceError.unauthenticated("token expired"),
    "denied": lambda: ServiceError.permission_denied("not yours"),
    "precondition": lambda: ServiceError.failed_precondition("adapter not loaded"),
    "exhausted": lambda: ServiceError.resource_exhausted("queue full"),
    "redis": lambda: redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
    "redis_timeout": lambda: redis.exceptions.TimeoutError("Timeout reading from socket"),
    "boom": lambda: RuntimeError("SECRET REQUEST TEXT"),
}


class ProbeServicer(pairstore_pb2_grpc.PairStoreServiceServicer):
    """GetPair raises ERRORS[id] (or answers); ExportPairs streams two pairs then fails as filter.dataset says."""

    def __init__(self) -> None:
        self.slow_started = threading.Event()
        self.release_slow = threading.Event()

    def GetPair(self, request: pairstore_pb2.GetPairRequest, context: grpc.ServicerContext):
        if request.id in ERRORS:
            raise ERRORS[request.id]()
        if request.id == "slow":
            self.slow_started.set()
            self.release_slow.wait(30)
        return pairstore_pb2.GetPairResponse(pair=common_pb2.Pair(id=request.id))

    def PutPairs(self, request: pairstore_pb2.PutPairsRequest, context: grpc.ServicerContext):
        for index, pair in enumerate(request.pairs):
            check_text_field(f"pairs[{index}].prompt.text", pair.prompt.text, PROMPT_LIMIT)
        return pairstore_pb2.PutPairsResponse(ids=[pair.id for pair in request.pairs], created=len(request.pairs))

    def ListPairs(self, request: pairstore_pb2.ListPairsRequest, context: grpc.ServicerContext):
        return pairstore_pb2.ListPairsResponse(pairs=[common_pb2.Pair(id="listed")])

    def ExportPairs(
        self, request: pairstore_pb2.ExportPairsRequest, context: grpc.ServicerContext
    ) -> Iterator[pairstore_pb2.ExportPairsResponse]:
        for index in range(2):
            yield pairstore_pb2.ExportPairsResponse(pair=common_pb2.Pair(id=f"p{index}"))
        if request.filter.dataset in ERRORS:
            raise ERRORS[request.filter.dataset]()


def make_settings(**overrides: object) -> ServiceSettings:
    """Settings on a free loopback port with the test tokens; `overrides` replace any field."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "auth_token": TOKEN,
        "read_token": READ_TOKEN,
        "dependency_check_seconds": 0.1,
        "drain_seconds": 5.0,
        "max_workers": 4,
    }
    values.update(overrides)
    return ServiceSettings(**values)


def make_spec(servicer: ProbeServicer, **overrides: object) -> ServiceSpec:
    values: dict[str, object] = {
        "name": "probe",
        "service_names": [SERVICE],
        "register": lambda server: pairstore_pb2_grpc.add_PairStoreServiceServicer_to_server(servicer, server),
        "read_scope_methods": {LIST_PAIRS},
    }
    values.update(overrides)
    return ServiceSpec(**values)
