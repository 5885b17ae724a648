"""Durable, idempotent storage of pairs in Redis, with indexes for listing, export and stats.

Layout under a key prefix P:
    P:pair:<id>            serialized Pair (the only copy of its text)
    P:seq                  counter; each new pair gets the next value, which orders everything
    P:order                sorted set id -> seq (all pairs)
    P:idx:<field>:<value>  sorted set id -> seq, for dataset, model, kind and job
    P:count:<field>        hash value -> count, for Stats without a filter
A Lua script stores one pair and all its index entries atomically, only if its id is new, so a
redelivered or retried pair is stored once. With AOF and `appendfsync always` an acknowledged pair
survives a kill -9 of Redis. (The script derives keys from the prefix, so the store wants one Redis
node, not a cluster.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import redis
from google.protobuf import timestamp_pb2

from shared.observability import domain
from shared.pairs.ids import pair_id, shard_of
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2

_PUT_SCRIPT = """
local prefix = ARGV[1]
local created = {}
for i = 0, (#KEYS - 1) do
  local id = KEYS[i + 1]
  local base = 2 + i * 5
  if redis.call('SET', prefix .. ':pair:' .. id, ARGV[base], 'NX') then
    local seq = redis.call('INCR', prefix .. ':seq')
    redis.call('ZADD', prefix .. ':order', seq, id)
    local fields = {'dataset', 'model', 'kind', 'job'}
    for f = 1, 4 do
      local value = ARGV[base + f]
      redis.call('ZADD', prefix .. ':idx:' .. fields[f] .. ':' .. value, seq, id)
      if f < 4 then redis.call('HINCRBY', prefix .. ':count:' .. fields[f], value, 1) end
    end
    created[i + 1] = 1
  else
    -- Stored once, by its first job; a later job that makes it again finds it under its own job too.
    local job = ARGV[base + 4]
    if job ~= '' then
      redis.call('ZADD', prefix .. ':idx:job:' .. job, redis.call('ZSCORE', prefix .. ':order', id), id)
    end
    created[i + 1] = 0
  end
end
return created
"""

_SCAN_BATCH = 256


def kind_name(kind: int) -> str:
    """`harmful` / `over_refusal` / `unspecified`, as used in indexes, stats and exports."""
    return common_pb2.PairKind.Name(kind).removeprefix("PAIR_KIND_").lower()


@dataclass
class PutResult:
    ids: list[str]
    created: int
    existing: int


@dataclass
class PairPage:
    pairs: list[common_pb2.Pair]
    next_cursor: int | None


@dataclass
class PairStats:
    total: int = 0
    by_dataset: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    snapshot_id: str = "0"


class PairRepository:
    """Pairs in Redis: put once by id, get, list in insertion order, export by shard, count."""

    def __init__(self, client: redis.Redis, key_prefix: str = "intervene:pairs") -> None:
        self._redis = client
        self._prefix = key_prefix
        self._put = client.register_script(_PUT_SCRIPT)

    def put(self, pairs: Sequence[common_pb2.Pair], now: timestamp_pb2.Timestamp | None = None) -> PutResult:
        """Stores the pairs whose ids are new, atomically with their index entries."""
        ids: list[str] = []
        args: list[bytes | str] = [self._prefix]
        keys: list[str] = []
        seen: set[str] = set()
        kinds: list[str] = []
        for original in pairs:
            pair = common_pb2.Pair()
            pair.CopyFrom(original)
            pair.id = pair.id or pair_id(pair)
            if not pair.provenance.HasField("created_at"):
                pair.provenance.created_at.CopyFrom(now or _now())
            ids.append(pair.id)
            if pair.id in seen:
                continue
            seen.add(pair.id)
            keys.append(pair.id)
            kinds.append(kind_name(pair.kind))
            args += [
                pair.SerializeToString(),
                pair.prompt.dataset,
                pair.provenance.model,
                kind_name(pair.kind),
                pair.provenance.job_id,
            ]
        flags = [int(flag) for flag in self._put(keys=keys, args=args)] if keys else []
        for kind, flag in zip(kinds, flags, strict=True):
            domain.PAIRS_STORED.labels(kind=kind, result="created" if flag else "existing").inc()
        created = sum(flags)
        return PutResult(ids=ids, created=created, existing=len(ids) - created)

    def get(self, identifier: str) -> common_pb2.Pair | None:
        blob = self._redis.get(f"{self._prefix}:pair:{identifier}")
        return common_pb2.Pair.FromString(blob) if blob is not None else None

    def snapshot_id(self) -> str:
        """The sequence number of the newest pair; changes whenever a pair is added."""
        return (self._redis.get(f"{self._prefix}:seq") or b"0").decode()

    def list(self, query: pairstore_pb2.PairFilter, after_seq: int, limit: int) -> PairPage:
        """Up to `limit` pairs matching `query` whose sequence number is above `after_seq`, oldest first."""
        pairs: list[common_pb2.Pair] = []
        last_seq = after_seq
        for seq, pair in self._scan(query, after_seq, upto_seq=None):
            if len(pairs) == limit:
                return PairPage(pairs, next_cursor=last_seq)
            pairs.append(pair)
            last_seq = seq
        return PairPage(pairs, next_cursor=None)

    def export(self, query: pairstore_pb2.PairFilter, shard: int, num_shards: int) -> Iterator[common_pb2.Pair]:
        """The pairs of one shard that existed when the export began, in insertion order."""
        upto = int(self.snapshot_id())
        for _, pair in self._scan(query, after_seq=0, upto_seq=upto):
            if shard_of(pair.id, num_shards) == shard:
                yield pair

    def stats(self, query: pairstore_pb2.PairFilter) -> PairStats:
        snapshot = self.snapshot_id()
        if _is_empty(query):
            return PairStats(
                total=self._redis.zcard(f"{self._prefix}:order"),
                by_dataset=self._counts("dataset"),
                by_model=self._counts("model"),
                by_kind=self._counts("kind"),
                snapshot_id=snapshot,
            )
        stats = PairStats(snapshot_id=snapshot)
        for _, pair in self._scan(query, after_seq=0, upto_seq=int(snapshot)):
            stats.total += 1
            for counts, value in (
                (stats.by_dataset, pair.prompt.dataset),
                (stats.by_model, pair.provenance.model),
                (stats.by_kind, kind_name(pair.kind)),
            ):
                counts[value] = counts.get(value, 0) + 1
        return stats

    def _counts(self, field_name: str) -> dict[str, int]:
        raw = self._redis.hgetall(f"{self._prefix}:count:{field_name}")
        return {key.decode(): int(value) for key, value in raw.items()}

    def _index_key(self, query: pairstore_pb2.PairFilter) -> str:
        """The narrowest index that the filter's exact-match fields select."""
        if query.job_id:
            return f"{self._prefix}:idx:job:{query.job_id}"
        if query.dataset:
            return f"{self._prefix}:idx:dataset:{query.dataset}"
        if query.model:
            return f"{self._prefix}:idx:model:{query.model}"
        if query.kind:
            return f"{self._prefix}:idx:kind:{kind_name(query.kind)}"
        return f"{self._prefix}:order"

    def _scan(
        self, query: pairstore_pb2.PairFilter, after_seq: int, upto_seq: int | None
    ) -> Iterator[tuple[int, common_pb2.Pair]]:
        key = self._index_key(query)
        upper = "+inf" if upto_seq is None else upto_seq
        cursor = after_seq
        while True:
            batch = self._redis.zrangebyscore(key, f"({cursor}", upper, start=0, num=_SCAN_BATCH, withscores=True)
            if not batch:
                return
            blobs = self._redis.mget([f"{self._prefix}:pair:{member.decode()}" for member, _ in batch])
            for (_, score), blob in zip(batch, blobs, strict=True):
                cursor = int(score)
                if blob is None:
                    continue
                pair = common_pb2.Pair.FromString(blob)
                if _matches(pair, query):
                    yield cursor, pair


def _is_empty(query: pairstore_pb2.PairFilter) -> bool:
    return query.ByteSize() == 0


def _matches(pair: common_pb2.Pair, query: pairstore_pb2.PairFilter) -> bool:
    """The filter's other fields; a job's pairs are its index (`_index_key`), including ones an earlier job stored."""
    created = pair.provenance.created_at.ToNanoseconds()
    return (
        (not query.dataset or pair.prompt.dataset == query.dataset)
        and (not query.model or pair.provenance.model == query.model)
        and (not query.kind or pair.kind == query.kind)
        and (not query.HasField("created_after") or created > query.created_after.ToNanoseconds())
        and (not query.HasField("created_before") or created < query.created_before.ToNanoseconds())
    )


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp
