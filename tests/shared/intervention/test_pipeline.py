"""The bulk pipeline's handlers over real Redis streams, with scripted generation and judge stages."""

from __future__ import annotations

import pytest
import redis

from shared.config.base import QueueSettings
from shared.intervention.jobs import JobStore
from shared.intervention.submission import SubmitLimits, submit
from shared.intervention.triggers import Trigger
from shared.intervention.worker import Pipeline, PipelineConfig
from shared.judging.steps import split
from shared.pairs.validation import validate_pair
from shared.protos.intervene.v1 import common_pb2, intervention_pb2, queue_pb2
from shared.queues import (
    CONTINUATION_GENERATED,
    CONTINUATION_JUDGED,
    CONTINUATION_REQUESTED,
    PAIR_CREATED,
    ROLLOUT_GENERATED,
    ROLLOUT_JUDGED,
    ROLLOUT_REQUESTED,
    WorkQueue,
)
from tests.shared.intervention.stages import ROLLOUTS, ScriptedStages

TRIGGERS = (Trigger("t1", "Wait, I should refuse."), Trigger("t2", "Hmm, that sounds wrong."))
LIMITS = SubmitLimits(
    max_prompt_chars=1000,
    max_prompts_per_job=100,
    limit_samples_per_prompt=8,
    benign_samples_per_prompt=3,
    default_rounds=2,
    limit_rounds=3,
    data_dir="../shared/data",
)


class Harness:
    def __init__(self, url: str, redeliver: bool = False, config: PipelineConfig | None = None) -> None:
        self.client = redis.Redis.from_url(url)
        self.jobs = JobStore(self.client, "test:jobs")
        queue = lambda name: WorkQueue(self.client, name, settings=QueueSettings(max_length=1000))  # noqa: E731
        self.queues = {name: queue(name) for name in (ROLLOUT_REQUESTED, ROLLOUT_JUDGED, CONTINUATION_JUDGED)}
        self.queues[ROLLOUT_GENERATED] = queue(ROLLOUT_GENERATED)
        self.queues[CONTINUATION_GENERATED] = queue(CONTINUATION_GENERATED)
        self.continuations = queue(CONTINUATION_REQUESTED)
        self.pair_queue = queue(PAIR_CREATED)
        config = config or PipelineConfig(TRIGGERS, "unit-v1")
        self.pipeline = Pipeline(self.jobs, self.continuations, self.pair_queue, config)
        self.stages = ScriptedStages(self.client)
        # The service creates its progress groups before it accepts a job; so must the harness.
        for name in (ROLLOUT_GENERATED, CONTINUATION_GENERATED):
            self.queues[name].ensure_group("intervention-progress")
        self.redeliver = redeliver

    def _twice(self, handler):
        """Every entry handled twice: what a redelivery after a lost ack does."""
        if not self.redeliver:
            return handler

        def both(delivery):
            handler(delivery)
            handler(delivery)

        return both

    def submit(self, texts: list[str], **fields) -> str:
        request = intervention_pb2.SubmitPromptsRequest(
            prompts=[common_pb2.Prompt(text=text) for text in texts], **fields
        )
        job_id, _ = submit(request, LIMITS, self.jobs, self.queues[ROLLOUT_REQUESTED])
        return job_id

    def drain(self) -> None:
        p = self.pipeline
        for _ in range(50):
            handled = self.stages.run_once()
            q = self.queues
            handled += (
                q[ROLLOUT_JUDGED].consume("intervention", "i", self._twice(p.on_rollout_judged), block_ms=0).handled
            )
            handled += (
                q[CONTINUATION_JUDGED]
                .consume("intervention", "i", self._twice(p.on_continuation_judged), block_ms=0)
                .handled
            )
            progress = "intervention-progress"
            handled += q[ROLLOUT_GENERATED].consume_batch(progress, "i", p.on_rollouts_generated, block_ms=0).handled
            handled += (
                q[CONTINUATION_GENERATED].consume_batch(progress, "i", p.on_continuations_generated, block_ms=0).handled
            )
            if not handled:
                return
        raise AssertionError("the pipeline did not settle")

    def pairs(self) -> list[common_pb2.Pair]:
        return [
            queue_pb2.PairCreated.FromString(fields[b"body"]).pair for _, fields in self.client.xrange(PAIR_CREATED)
        ]

    def continuation_requests(self) -> int:
        return int(self.client.xlen(CONTINUATION_REQUESTED))


def check_provenance(pair: common_pb2.Pair) -> None:
    """The prefix ends at a step boundary of the original reasoning; chosen starts with the trigger."""
    original = pair.prefix + pair.rejected.split("\n</think>\n\n")[0]
    assert pair.provenance.divergence_offset == len(pair.prefix)
    assert len(pair.prefix) in {start for start, _ in split(original)}
    trigger = {t.id: t.text for t in TRIGGERS}[pair.provenance.trigger_id]
    assert pair.chosen.startswith(trigger)


def test_bulk_job_cuts_branches_pairs_and_reintervenes(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["harm-safe-branch", "harm-two-rounds", "fine"])
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED
    assert (job.rollouts_requested, job.rollouts_generated, job.rollouts_judged, job.rollouts_unsafe) == (3, 3, 3, 2)
    assert [(r.round, r.tried, r.succeeded) for r in job.rounds] == [(1, 2, 1), (2, 1, 1)]
    assert job.interventions_tried == 3 and job.continuations_judged == 6 == job.continuations_generated
    assert dict(job.no_pair_reasons) == {"safe": 1}
    pairs = harness.pairs()
    # Both branches of each intervention were safe; one pair per rollout is kept (the first in pool order).
    assert job.pairs_created == len(pairs) == len({p.id for p in pairs}) == 2
    assert dict(job.pairs_dropped) == {"over_cap": 2}
    assert {p.provenance.trigger_id for p in pairs} == {"t1"}
    for pair in pairs:
        check_provenance(pair)
        assert pair.provenance.job_id == job_id and pair.provenance.trigger_pool_version == "unit-v1"
    second = [p for p in pairs if p.provenance.round == 2]
    assert len(second) == 1 and all(p.rejected.startswith("COMPLY: let me continue") for p in second)
    assert all(p.provenance.rejected_reasoning_verdict == common_pb2.VERDICT_HARMFUL for p in pairs)


def test_redelivered_entries_never_double_count(redis_url: str) -> None:
    once = Harness(redis_url)
    first = once.submit(["harm-safe-branch", "harm-two-rounds", "fine"])
    once.drain()
    expected = once.jobs.read(first)
    expected_pairs = {p.id for p in once.pairs()}
    requests_once = once.continuation_requests()

    redis.Redis.from_url(redis_url).flushall()
    twice = Harness(redis_url, redeliver=True)
    second = twice.submit(["harm-safe-branch", "harm-two-rounds", "fine"])
    twice.drain()
    got = twice.jobs.read(second)

    def counts(job):
        copy = common_pb2.Job()
        copy.CopyFrom(job)
        for name in ("id", "created_at", "finished_at"):
            copy.ClearField(name)
        return copy

    assert counts(got) == counts(expected)
    # Pair ids hash the job-independent text, so the same pairs come out; each is counted once.
    assert {p.id for p in twice.pairs()} == expected_pairs
    assert twice.continuation_requests() <= requests_once


def test_benign_job_pairs_helpful_over_refusal(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["benign-mixed"], benign=True)
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.rollouts_requested == 3
    pairs = harness.pairs()
    assert len(pairs) == job.pairs_created == 2
    helpful = ROLLOUTS["benign-mixed"][0]
    for pair in pairs:
        assert pair.kind == common_pb2.PAIR_KIND_OVER_REFUSAL and pair.prefix == ""
        assert pair.chosen == helpful[0] + "\n</think>\n\n" + helpful[1]
        assert "cannot help" in pair.rejected
    assert harness.continuation_requests() == 0


def test_benign_prompt_never_refused_makes_no_pair_without_contrast(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["benign-helpful"], benign=True, samples_per_prompt=2)
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.pairs_created == 0
    assert dict(job.no_pair_reasons) == {"no_refusal": 2} and harness.continuation_requests() == 0


def test_benign_contrast_pairs_the_helpful_suffix_over_a_refusing_trigger_branch(redis_url: str) -> None:
    config = PipelineConfig(TRIGGERS, "unit-v1", benign_contrast=True)
    for redeliver in (False, True):
        redis.Redis.from_url(redis_url).flushdb()
        harness = Harness(redis_url, redeliver=redeliver, config=config)
        job_id = harness.submit(["benign-helpful"], benign=True, samples_per_prompt=2)
        harness.drain()

        job = harness.jobs.read(job_id)
        assert job.state == common_pb2.JOB_STATE_SUCCEEDED
        assert job.interventions_tried == 1, "one sample is branched, once, even when entries are redelivered"
        assert job.continuations_generated == len(TRIGGERS)
        pairs = harness.pairs()
        assert {p.id for p in pairs} == set(harness.jobs.pair_ids(job_id)) and job.pairs_created == 1
        assert dict(job.no_pair_reasons) == {"no_refusal": 1}
        pair = pairs[0]
        reasoning, response = ROLLOUTS["benign-helpful"][0]
        second_step = reasoning.index("I can answer")
        assert pair.kind == common_pb2.PAIR_KIND_OVER_REFUSAL
        assert pair.prefix == reasoning[:second_step]
        assert pair.chosen == reasoning[second_step:] + "\n</think>\n\n" + response, "the model's own helpful suffix"
        assert pair.rejected.startswith(TRIGGERS[0].text) and pair.rejected.endswith("cannot help with that.")
        assert pair.provenance.divergence_offset == second_step and pair.provenance.trigger_id == TRIGGERS[0].id


@pytest.mark.parametrize(("prompt", "trigger"), [("benign-helps-on", 0), ("benign-second-refuses", 1)])
def test_benign_contrast_takes_a_branch_that_refused_first_else_one_that_helped_on(
    redis_url: str, prompt: str, trigger: int
) -> None:
    # Saying the trigger on a benign prompt is the over-refusal to unlearn, whether or not the branch then refused.
    harness = Harness(redis_url, config=PipelineConfig(TRIGGERS, "unit-v1", benign_contrast=True))
    job_id = harness.submit([prompt], benign=True, samples_per_prompt=2)
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED and job.pairs_created == 1
    (pair,) = harness.pairs()
    assert pair.kind == common_pb2.PAIR_KIND_OVER_REFUSAL and pair.provenance.trigger_id == TRIGGERS[trigger].id
    assert pair.rejected.startswith(TRIGGERS[trigger].text)
    assert pair.chosen.endswith("Here is the answer.")
    # The pair store accepts it: an over-refusal pair may share a prefix (the store refused every contrast pair).
    validate_pair(pair, "pairs[0]", max_field_chars=10_000)


def test_dead_lettered_rollout_ends_as_failed(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["fine", "harm-safe-branch"])
    queue = harness.queues[ROLLOUT_REQUESTED]
    [delivery] = queue.read("generation", "g", count=1, block_ms=0)
    queue.dead_letter("generation", [(delivery.entry_id, 5, "poison")])
    assert harness.pipeline.sweep_dead_letters() == 1
    assert harness.pipeline.sweep_dead_letters() == 0, "the cursor remembers what was swept"
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED
    assert job.failed_items == 1 and job.no_pair_reasons["failed"] == 1


def test_benign_prompt_with_a_failed_sample_still_pairs(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["benign-one-fails"], benign=True)
    harness.drain()

    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED
    assert (job.failed_items, job.rollouts_judged, job.pairs_created) == (1, 2, 1)
    assert dict(job.no_pair_reasons) == {"generation_failed": 1}
