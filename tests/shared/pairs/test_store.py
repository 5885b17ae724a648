"""The Redis pair repository: idempotent puts, ordering, filters, shards, stats, durability."""

from __future__ import annotations

import redis

from shared.pairs.ids import pair_id
from shared.pairs.store import PairRepository
from shared.protos.intervene.v1 import common_pb2, pairstore_pb2
from tests.shared.pairs.factories import make_pair
from tools.redis_process import RedisProcess


def repository(url: str) -> PairRepository:
    return PairRepository(redis.Redis.from_url(url))


def test_same_pair_twice_is_stored_once(redis_url: str) -> None:
    repo = repository(redis_url)
    first = repo.put([make_pair(1)])
    again = repo.put([make_pair(1), make_pair(1)])
    assert first.created == 1 and again.created == 0 and again.existing == 2
    assert again.ids == first.ids * 2 == [pair_id(make_pair(1))] * 2
    assert repo.stats(pairstore_pb2.PairFilter()).total == 1


def test_a_job_that_makes_a_stored_pair_again_finds_it_under_its_own_id(redis_url: str) -> None:
    # A second reproduce run on the same stack makes the same pairs (same prompts, seed and judge); its export by job
    # id found none of them, and it trained on its over-refusal pairs alone.
    repo = repository(redis_url)
    repo.put([make_pair(1, job_id="first"), make_pair(2, job_id="first")])
    again = repo.put([make_pair(1, job_id="second"), make_pair(3, job_id="second")])
    assert again.created == 1 and again.existing == 1
    second = [p.prompt.id for p in repo.export(pairstore_pb2.PairFilter(job_id="second"), 0, 1)]
    assert second == ["p1", "p3"]
    assert [p.prompt.id for p in repo.export(pairstore_pb2.PairFilter(job_id="first"), 0, 1)] == ["p1", "p2"]
    assert repo.get(again.ids[0]).provenance.job_id == "first", "the stored pair keeps its first provenance"
    assert repo.stats(pairstore_pb2.PairFilter(job_id="second")).total == 2


def test_get_returns_stored_pair_with_created_at(redis_url: str) -> None:
    repo = repository(redis_url)
    (identifier,) = repo.put([make_pair(7)]).ids
    stored = repo.get(identifier)
    assert stored is not None and stored.chosen == make_pair(7).chosen
    assert stored.provenance.HasField("created_at")
    assert repo.get("0" * 64) is None


def test_list_pages_in_insertion_order_with_filters(redis_url: str) -> None:
    repo = repository(redis_url)
    repo.put([make_pair(i, dataset="a" if i % 2 else "b") for i in range(10)])
    everything = repo.list(pairstore_pb2.PairFilter(), after_seq=0, limit=4)
    assert [p.prompt.id for p in everything.pairs] == ["p0", "p1", "p2", "p3"]
    rest = repo.list(pairstore_pb2.PairFilter(), after_seq=everything.next_cursor, limit=100)
    assert [p.prompt.id for p in rest.pairs] == [f"p{i}" for i in range(4, 10)] and rest.next_cursor is None
    only_a = repo.list(pairstore_pb2.PairFilter(dataset="a"), after_seq=0, limit=100)
    assert [p.prompt.id for p in only_a.pairs] == ["p1", "p3", "p5", "p7", "p9"]


def test_export_shards_partition_the_pairs_stably(redis_url: str) -> None:
    repo = repository(redis_url)
    repo.put([make_pair(i) for i in range(40)])
    shards = [[p.id for p in repo.export(pairstore_pb2.PairFilter(), s, 3)] for s in range(3)]
    assert sorted(i for shard in shards for i in shard) == sorted(repo.put([make_pair(i) for i in range(40)]).ids)
    assert all(shards), "every shard of 40 pairs over 3 shards should hold some"
    assert shards == [[p.id for p in repo.export(pairstore_pb2.PairFilter(), s, 3)] for s in range(3)]


def test_export_is_a_snapshot(redis_url: str) -> None:
    repo = repository(redis_url)
    repo.put([make_pair(i) for i in range(3)])
    stream = repo.export(pairstore_pb2.PairFilter(), 0, 1)
    first = next(stream)
    repo.put([make_pair(99)])
    assert [first.prompt.id, *(p.prompt.id for p in stream)] == ["p0", "p1", "p2"]


def test_stats_by_field_and_filtered(redis_url: str) -> None:
    repo = repository(redis_url)
    repo.put([make_pair(i, dataset="a", model="m1") for i in range(3)])
    repo.put([make_pair(i, dataset="b", model="m2") for i in range(3, 5)])
    stats = repo.stats(pairstore_pb2.PairFilter())
    assert (stats.total, stats.by_dataset, stats.by_model) == (5, {"a": 3, "b": 2}, {"m1": 3, "m2": 2})
    assert stats.by_kind == {"harmful": 5} and stats.snapshot_id == "5"
    filtered = repo.stats(pairstore_pb2.PairFilter(model="m2", kind=common_pb2.PAIR_KIND_HARMFUL))
    assert (filtered.total, filtered.by_dataset) == (2, {"b": 2})


def test_pairs_survive_kill_9_of_redis(own_redis: RedisProcess) -> None:
    ids = repository(own_redis.url).put([make_pair(i) for i in range(25)]).ids
    own_redis.kill()
    own_redis.start()
    repo = repository(own_redis.url)
    assert [repo.get(identifier) is not None for identifier in ids] == [True] * 25
    assert repo.stats(pairstore_pb2.PairFilter()).total == 25
    assert repo.put([make_pair(0)]).created == 0
