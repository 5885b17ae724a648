"""The PairStoreService RPCs over the Redis pair repository: validation, paging and status codes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

import grpc

from shared.config.pairstore import PairStoreSettings
from shared.observability import domain
from shared.pairs.store import PairRepository
from shared.pairs.validation import InvalidPair, validate_pair
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2, pairstore_pb2_grpc
from shared.rpc.errors import ServiceError

_DEFAULT_PAGE_SIZE = 100


class PairStoreServicer(pairstore_pb2_grpc.PairStoreServiceServicer):
    def __init__(self, repository: PairRepository, settings: PairStoreSettings) -> None:
        self._repository = repository
        self._settings = settings

    def PutPairs(self, request: pairstore_pb2.PutPairsRequest, context: grpc.ServicerContext):
        if len(request.pairs) > self._settings.max_pairs_per_put:
            raise ServiceError.invalid_argument(
                "pairs", f"{len(request.pairs)} pairs; the limit is {self._settings.max_pairs_per_put} per call"
            )
        for index, pair in enumerate(request.pairs):
            try:
                validate_pair(pair, f"pairs[{index}]", self._settings.max_field_chars)
            except InvalidPair as error:
                domain.PAIRS_REFUSED.labels(path="rpc").inc(len(request.pairs))
                raise ServiceError.invalid_argument(error.field, error.reason) from None
        result = self._repository.put(request.pairs)
        return pairstore_pb2.PutPairsResponse(ids=result.ids, created=result.created, existing=result.existing)

    def GetPair(self, request: pairstore_pb2.GetPairRequest, context: grpc.ServicerContext):
        if not request.id:
            raise ServiceError.invalid_argument("id", "is empty")
        pair = self._repository.get(request.id)
        if pair is None:
            raise ServiceError.not_found(f"no pair with id {request.id[:80]!r}")
        return pairstore_pb2.GetPairResponse(pair=pair)

    def ListPairs(self, request: pairstore_pb2.ListPairsRequest, context: grpc.ServicerContext):
        limit = self._settings.max_page_size
        if request.page_size < 0 or request.page_size > limit:
            raise ServiceError.invalid_argument("page_size", f"is {request.page_size}; it must be in [0, {limit}]")
        _check_filter(request.filter)
        page = self._repository.list(
            request.filter, after_seq=_decode_token(request.page_token), limit=request.page_size or _DEFAULT_PAGE_SIZE
        )
        token = _encode_token(page.next_cursor) if page.next_cursor is not None else ""
        return pairstore_pb2.ListPairsResponse(pairs=page.pairs, next_page_token=token)

    def ExportPairs(
        self, request: pairstore_pb2.ExportPairsRequest, context: grpc.ServicerContext
    ) -> Iterator[pairstore_pb2.ExportPairsResponse]:
        num_shards = request.num_shards or 1
        if num_shards < 1:
            raise ServiceError.invalid_argument("num_shards", f"is {request.num_shards}; it must be >= 1")
        if not 0 <= request.shard < num_shards:
            raise ServiceError.invalid_argument("shard", f"is {request.shard}; it must be in [0, {num_shards})")
        _check_filter(request.filter)
        for pair in self._repository.export(request.filter, request.shard, num_shards):
            yield pairstore_pb2.ExportPairsResponse(pair=pair)

    def Stats(self, request: pairstore_pb2.StatsRequest, context: grpc.ServicerContext):
        _check_filter(request.filter)
        stats = self._repository.stats(request.filter)
        return pairstore_pb2.StatsResponse(
            total=stats.total,
            by_dataset=stats.by_dataset,
            by_model=stats.by_model,
            by_kind=stats.by_kind,
            snapshot_id=stats.snapshot_id,
        )


def _check_filter(query: pairstore_pb2.PairFilter) -> None:
    if query.kind not in common_pb2.PairKind.values():
        known = ", ".join(common_pb2.PairKind.keys())
        raise ServiceError.invalid_argument("filter.kind", f"is {query.kind}; it must be one of {known}")
    for name in ("created_after", "created_before"):
        if query.HasField(name):
            try:
                getattr(query, name).ToNanoseconds()
            except ValueError:
                raise ServiceError.invalid_argument(
                    f"filter.{name}", "is not a valid timestamp (years 0001-9999, nanos in [0, 999999999])"
                ) from None


def _encode_token(cursor: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{cursor}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "seq" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ServiceError.invalid_argument("page_token", "is not a token from a previous ListPairs response")
