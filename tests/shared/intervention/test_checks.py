"""The pair checks: similarity on literal strings, each check through the loop (scripted doubles) and the pipeline's
counters over real Redis."""

from __future__ import annotations

import pytest

from shared.intervention.checks import NO_CHECKS, PairChecks, rejected_is_refusal, similarity
from shared.intervention.decisions import NoPairReason
from shared.intervention.loop import BranchText, InterventionLoop
from shared.protos.intervene.v1 import common_pb2
from tests.shared.intervention.scripted import ScriptedGenerator, ScriptedJudge
from tests.shared.intervention.test_loop import PROMPT, REASONING, SAFE, TRIGGERS
from tests.shared.intervention.test_pipeline import Harness

# Says the trigger, then writes the rejected suffix again with one word changed (the judge still calls it safe).
CARRIES_ON = BranchText(" I'll start by planning it. DETAIL follow.", "harm here")
# Judged safe as a whole by a judge that misses it, but a later step is a compliance cue.
CUE_AFTER_TRIGGER = BranchText(" Fine. COMPLY: sure, here goes.", "Sorry, I cannot help with that.")


def test_similarity_on_literal_strings() -> None:
    assert similarity("I will write it now.", "i WILL write it, now") == 1.0
    assert similarity("", "") == 1.0
    assert similarity("one two three four", "five six seven eight") == 0.0
    # 4 of 5 words shared in order: ratio = 2 * 4 / (5 + 4)
    assert similarity("first I plan the email", "first I plan email") == pytest.approx(8 / 9)
    assert similarity("I will decline politely", "COMPLY I'll start by planning it DETAILS follow") < 0.2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_similarity"):
        PairChecks(max_similarity=0.0)
    with pytest.raises(ValueError, match="max_pairs_per_rollout"):
        PairChecks(max_pairs_per_rollout=-1)


def _judged(reasoning: str, response: str, refused: bool = False) -> tuple[common_pb2.Rollout, common_pb2.Judgement]:
    rollout = common_pb2.Rollout(id="r", reasoning=reasoning, response=response)
    (judgement,) = ScriptedJudge().judge([rollout])
    judgement.response_refused = refused
    return rollout, judgement


def test_a_rejected_side_that_refuses_is_a_refusal() -> None:
    offset = REASONING.index("COMPLY")
    assert not rejected_is_refusal(*_judged(REASONING, "HARM here"), offset)
    assert rejected_is_refusal(*_judged(REASONING, "I can't help with that."), offset)  # the rules' refusal patterns
    assert rejected_is_refusal(*_judged(REASONING, "HARM", refused=True), offset)  # the judge's own flag
    apology = "The user wants it. COMPLY I should not help with this, I will decline."
    assert rejected_is_refusal(*_judged(apology, "HARM"), apology.index("COMPLY"))  # the cue reads as a trigger


def _run(branches: dict[str, BranchText], response: str = "HARM here", checks: PairChecks | None = None):
    generator = ScriptedGenerator(REASONING, response, [branches])
    loop = InterventionLoop(generator, ScriptedJudge(), TRIGGERS, "unit-v1", checks=checks)
    return loop.run(PROMPT, common_pb2.SamplingParams())


def test_a_branch_that_carries_on_makes_no_pair_but_is_still_shown() -> None:
    outcome = _run({"t1": CARRIES_ON, "t2": BranchText(" DETAILS.", "HARM")})
    assert outcome.pairs == [] and outcome.dropped == {"chosen_similar": 1}
    assert outcome.no_pair_reason is NoPairReason.PAIRS_DROPPED and not outcome.withheld
    # With the checks off the same branch is a pair: the check, not the judge, stopped it.
    assert len(_run({"t1": CARRIES_ON, "t2": SAFE}, checks=NO_CHECKS).pairs) == 2


def test_a_cue_after_the_trigger_drops_the_branch_and_the_next_safe_one_is_kept() -> None:
    class MissesLateCues(ScriptedJudge):
        def _one(self, rollout):
            judgement = super()._one(rollout)
            judgement.reasoning_verdict = common_pb2.VERDICT_SAFE if rollout.round else judgement.reasoning_verdict
            judgement.response_verdict = common_pb2.VERDICT_SAFE if rollout.round else judgement.response_verdict
            return judgement

    generator = ScriptedGenerator(REASONING, "HARM here", [{"t1": CUE_AFTER_TRIGGER, "t2": SAFE}])
    outcome = InterventionLoop(generator, MissesLateCues(), TRIGGERS, "unit-v1").run(
        PROMPT, common_pb2.SamplingParams()
    )
    (pair,) = outcome.pairs
    assert pair.provenance.trigger_id == "t2" and outcome.dropped == {"chosen_cue": 1}


def test_a_rejected_refusal_makes_no_pair_though_the_trace_is_corrected() -> None:
    outcome = _run({"t1": SAFE, "t2": SAFE}, response="I can't help with that, sorry.")
    assert outcome.pairs == [] and outcome.no_pair_reason is NoPairReason.REJECTED_REFUSAL
    assert not outcome.withheld and outcome.interventions


def test_the_cap_keeps_the_first_safe_branches() -> None:
    assert [p.provenance.trigger_id for p in _run({"t1": SAFE, "t2": SAFE}).pairs] == ["t1"]
    uncapped = _run({"t1": SAFE, "t2": SAFE}, checks=PairChecks(max_pairs_per_rollout=0))
    assert [p.provenance.trigger_id for p in uncapped.pairs] == ["t1", "t2"] and uncapped.dropped == {}


def test_the_pipeline_counts_each_check_and_skips_refusing_rollouts(redis_url: str) -> None:
    harness = Harness(redis_url)
    job_id = harness.submit(["harm-safe-branch", "harm-refuses"])
    harness.drain()
    job = harness.jobs.read(job_id)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED
    assert dict(job.no_pair_reasons) == {"rejected_refusal": 1}
    assert dict(job.pairs_dropped) == {"over_cap": 1} and job.pairs_created == 1
    assert job.interventions_tried == 1, "the refusing rollout got no continuations"
