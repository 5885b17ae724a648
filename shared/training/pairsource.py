"""This rank's pairs: its shard of an exported file, or `ExportPairs(shard=rank, num_shards=world)` from the pair
store, saved under the run's folder on first start so that a resumed run reads exactly the same pairs.

The trainer meets the pair store only through the protos (DESIGN §3): it never imports the store's code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
from google.protobuf import json_format

from shared.training.data import PairRecord, record_from_proto, record_from_row, shard_of_file
from shared.training.tokenize import PairTokenError


class PairSourceError(RuntimeError):
    """The pair source cannot be read (missing file, unreachable store); raised before training starts."""


def _store_stub(address: str, token: str | None):
    from shared.protos.intervene.v1 import pairstore_pb2_grpc
    from shared.rpc.client import connect

    return pairstore_pb2_grpc.PairStoreServiceStub(connect(address, token=token))


def store_snapshot(address: str, token: str | None, timeout_s: float) -> str:
    """The pair store's snapshot id; raises `PairSourceError` when the store does not answer."""
    from shared.protos.intervene.v1 import pairstore_pb2

    try:
        return _store_stub(address, token).Stats(pairstore_pb2.StatsRequest(), timeout=timeout_s).snapshot_id
    except grpc.RpcError as error:
        raise PairSourceError(
            f"pair store at {address} did not answer Stats ({error.code().name}: {error.details()}); "
            "check INTERVENE_TRAINER_PAIR_STORE and the read-scope token, or train from an exported file"
        ) from error


def stream_store_shard(address: str, token: str | None, rank: int, world: int, cache: Path) -> tuple[list, str]:
    """This rank's pairs from the store (or from `cache`, written on first use) and the snapshot id."""
    if cache.exists():
        saved = json.loads(cache.read_text())
        return [record_from_proto(_pair_from_json(p)) for p in saved["pairs"]], saved["snapshot_id"]
    from shared.protos.intervene.v1 import pairstore_pb2

    snapshot = store_snapshot(address, token, timeout_s=30.0)
    request = pairstore_pb2.ExportPairsRequest(shard=rank, num_shards=world)
    try:
        pairs = [response.pair for response in _store_stub(address, token).ExportPairs(request)]
    except grpc.RpcError as error:
        raise PairSourceError(f"ExportPairs from {address} failed ({error.code().name}: {error.details()})") from error
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = cache.with_suffix(f".tmp{os.getpid()}")
    body = {"snapshot_id": snapshot, "pairs": [json_format.MessageToDict(p) for p in pairs]}
    staging.write_text(json.dumps(body))
    os.replace(staging, cache)
    return [record_from_proto(p) for p in pairs], snapshot


def _pair_from_json(value: dict):
    from shared.protos.intervene.v1 import common_pb2

    return json_format.ParseDict(value, common_pb2.Pair())


def file_shard(path: Path, rank: int, world: int) -> list[PairRecord | PairTokenError]:
    """This rank's records of an exported file; malformed rows come back as errors to count."""
    if not path.exists():
        raise PairSourceError(f"pairs file {path} does not exist: export pairs first (intervene pairs export)")
    out: list[PairRecord | PairTokenError] = []
    for index, row in enumerate(shard_of_file(path, rank, world)):
        try:
            out.append(record_from_row(row, index * world + rank))
        except PairTokenError as error:
            out.append(error)
    return out
