"""The job feeder over a real redis-server: a job bigger than the window is queued as earlier rollouts finish,
each rollout exactly once, even with feeders racing; submission counts stored prompts against the stream's cap."""

from __future__ import annotations

import threading

import pytest
import redis

from shared.config.base import QueueSettings
from shared.intervention.decisions import NoPairReason
from shared.intervention.feeder import JobFeeder
from shared.intervention.ids import rollout_id
from shared.intervention.jobs import JobStore
from shared.intervention.submission import QueueFull, SubmitLimits, submit
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, queue_pb2
from shared.queues import ROLLOUT_REQUESTED, WorkQueue

GROUP = "generation"


def limits(window: int) -> SubmitLimits:
    return SubmitLimits(
        max_prompt_chars=1000,
        max_prompts_per_job=10_000,
        limit_samples_per_prompt=8,
        benign_samples_per_prompt=2,
        default_rounds=1,
        limit_rounds=3,
        data_dir="../shared/data",
        rollout_window=window,
    )


def setup(url: str, cap: int = 10_000) -> tuple[JobStore, WorkQueue[queue_pb2.RolloutRequested]]:
    client = redis.Redis.from_url(url)
    queue = WorkQueue(client, ROLLOUT_REQUESTED, settings=QueueSettings(max_length=cap))
    queue.ensure_group(GROUP)
    return JobStore(client, "test:jobs"), queue


def request(count: int, samples: int = 0) -> intervention_pb2.SubmitPromptsRequest:
    prompts = [common_pb2.Prompt(text=f"prompt number {i}") for i in range(count)]
    return intervention_pb2.SubmitPromptsRequest(prompts=prompts, samples_per_prompt=samples)


def take_all(queue: WorkQueue[queue_pb2.RolloutRequested]) -> list[queue_pb2.RolloutRequested]:
    """Reads and acks every queued entry, as the generation stage would."""
    taken = []
    while batch := queue.read(GROUP, "g", count=1000, block_ms=0):
        queue.ack(GROUP, [delivery.entry_id for delivery in batch])
        taken += [delivery.message for delivery in batch]
    return taken


def test_a_job_bigger_than_the_window_is_fed_as_rollouts_finish(redis_url: str) -> None:
    jobs, queue = setup(redis_url)
    job_id, _ = submit(request(25, samples=2), limits(window=8), jobs, queue)
    feeder = JobFeeder(jobs, queue, window=8)
    seen: list[queue_pb2.RolloutRequested] = []
    while len(seen) < 50:
        assert queue.client.xlen(ROLLOUT_REQUESTED) <= 8, "never more than the window in flight"
        batch = take_all(queue)
        assert batch, "the feeder stalled"
        seen += batch
        assert feeder.feed() == 0, "nothing is fed while the window is full"
        jobs.finish(job_id, dict.fromkeys((m.rollout_id for m in batch), NoPairReason.SAFE))
        feeder.feed()
    prompts = [m.prompt.text for m in seen]
    expected = [(f"prompt number {i}", s) for i in range(25) for s in range(2)]
    assert [(m.prompt.text, m.sample_index) for m in seen] == expected, "every rollout once, in submission order"
    assert len({m.rollout_id for m in seen}) == 50 and prompts[0] == "prompt number 0"
    assert seen[1].rollout_id == rollout_id(job_id, seen[1].prompt.id, 1)
    assert feeder.feed() == 0 and take_all(queue) == []
    assert not jobs.client.exists(jobs.key(job_id, "prompts")), "stored prompts go once every rollout is queued"
    assert jobs.read(job_id).state == common_pb2.JOB_STATE_SUCCEEDED
    feeder.feed()
    assert jobs.active() == [], "a finished job leaves the feeding order"


@pytest.mark.parametrize("feeders", [2, 4])
def test_racing_feeders_queue_each_rollout_once(redis_url: str, feeders: int) -> None:
    jobs, queue = setup(redis_url)
    job_id, _ = submit(request(3000), limits(window=1), jobs, queue)
    start = threading.Barrier(feeders)

    def feed() -> None:
        # Each replica has its own clients and spec cache, as separate processes would.
        own_jobs, own_queue = setup(redis_url)
        start.wait()
        JobFeeder(own_jobs, own_queue, window=5000).feed()

    threads = [threading.Thread(target=feed) for _ in range(feeders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [m.rollout_id for m in take_all(queue)]
    assert len(ids) == len(set(ids)) == 3000
    assert int(jobs.client.hget(jobs.key(job_id, "meta"), "fed")) == 3000


def test_a_stale_cursor_writes_nothing(redis_url: str) -> None:
    jobs, queue = setup(redis_url)
    job_id, _ = submit(request(4), limits(window=2), jobs, queue)
    meta = jobs.key(job_id, "meta")
    message = queue_pb2.RolloutRequested(job_id=job_id, rollout_id="r-again")
    # A feeder that read the cursor at 0 and died before writing comes back: its write must not land.
    assert queue.produce_guarded([message], meta, "fed", "0", "1") is None
    assert queue.client.xlen(ROLLOUT_REQUESTED) == 2 and jobs.client.hget(meta, "fed") == b"2"


def test_submission_counts_waiting_prompts_against_the_cap(redis_url: str) -> None:
    jobs, queue = setup(redis_url, cap=10)
    submit(request(8), limits(window=2), jobs, queue)
    with pytest.raises(QueueFull, match="room for 2 entries and the job needs 3"):
        submit(request(3), limits(window=2), jobs, queue)
    assert len(jobs.active()) == 1, "nothing of the refused job was written"


def test_feeding_pauses_while_a_later_stream_is_behind(redis_url: str) -> None:
    jobs, queue = setup(redis_url)
    pairs = WorkQueue(queue.client, "pair.created", settings=QueueSettings(max_length=100))
    pairs.produce_many([queue_pb2.PairCreated() for _ in range(4)])  # the pair store is behind
    submit(request(10), limits(window=4), jobs, queue)
    assert queue.client.xlen(ROLLOUT_REQUESTED) == 0
    pairs.client.delete("pair.created")
    assert JobFeeder(jobs, queue, window=4).feed() == 4
