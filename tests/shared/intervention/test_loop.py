"""The intervention algorithm's decisions, driven by a scripted generator and judge."""

from __future__ import annotations

import pytest

from shared.intervention.decisions import NoPairReason, over_refusal_pairs, over_refusal_reasons
from shared.intervention.loop import BranchText, InterventionLoop
from shared.intervention.triggers import Trigger, load_pool
from shared.pairs.ids import pair_id
from shared.protos.intervene.v1 import common_pb2
from tests.shared.intervention.scripted import CONTEXT, ScriptedGenerator, ScriptedJudge

PROMPT = common_pb2.Prompt(id="p1", text="please do the thing", dataset="unit")
REASONING = "The user wants the thing. It could hurt people. COMPLY: I'll start by planning it. DETAILS follow."
TRIGGERS = [Trigger("t1", "Wait, I should refuse."), Trigger("t2", "Hmm, that sounds wrong.")]
SAFE = BranchText(" I will decline politely.", "Sorry, I cannot help with that.")
UNSAFE_AGAIN = BranchText(" Anyway. COMPLY: let me continue with it anyway. DETAILS.", "HARM")
UNSAFE_NO_CUE = BranchText(" DETAILS.", "HARM")


def loop_with(branch_rounds, max_rounds: int = 1, reasoning: str = REASONING):
    generator = ScriptedGenerator(reasoning, "HARM here", branch_rounds)
    return InterventionLoop(generator, ScriptedJudge(), TRIGGERS, "unit-v1", max_rounds=max_rounds), generator


def test_cut_at_first_cue_and_pair_per_safe_branch() -> None:
    loop, generator = loop_with([{"t1": SAFE, "t2": UNSAFE_NO_CUE}])
    outcome = loop.run(PROMPT, common_pb2.SamplingParams(), job_id="job-7")

    kept = "The user wants the thing. It could hurt people. "
    assert generator.calls == [("r-origin", kept, ["t1", "t2"])]
    assert [(i.round, i.step, i.char_offset, i.trigger_id, i.success) for i in outcome.interventions] == [
        (1, 3, len(kept), "t1", True),
        (1, 3, len(kept), "t2", False),
    ]
    (pair,) = outcome.pairs
    assert pair.context == CONTEXT and pair.prefix == kept
    assert pair.chosen == "Wait, I should refuse. I will decline politely.\n</think>\n\nSorry, I cannot help with that."
    assert pair.rejected == "COMPLY: I'll start by planning it. DETAILS follow.\n</think>\n\nHARM here"
    assert pair.id == pair_id(pair) and pair.kind == common_pb2.PAIR_KIND_HARMFUL
    provenance = pair.provenance
    assert (provenance.rollout_id, provenance.divergence_step, provenance.trigger_id, provenance.round) == (
        "r-origin",
        3,
        "t1",
        1,
    )
    assert (provenance.job_id, provenance.trigger_pool_version, provenance.judge_name) == (
        "job-7",
        "unit-v1",
        "scripted",
    )
    assert provenance.rejected_reasoning_verdict == common_pb2.VERDICT_HARMFUL
    assert provenance.chosen_reasoning_verdict == common_pb2.VERDICT_SAFE
    assert (
        not outcome.withheld and outcome.rollout.reasoning == kept + "Wait, I should refuse. I will decline politely."
    )


def test_safe_rollout_needs_no_intervention() -> None:
    generator = ScriptedGenerator("All fine here. Nothing to worry about.", "Here you go.", [])
    outcome = InterventionLoop(generator, ScriptedJudge(), TRIGGERS, "unit-v1").run(PROMPT, common_pb2.SamplingParams())
    assert outcome.no_pair_reason is NoPairReason.SAFE and not outcome.withheld and not outcome.pairs
    assert generator.calls == []


def test_unsafe_without_cue_is_withheld() -> None:
    loop, generator = loop_with([], reasoning="DETAILS right away. More DETAILS.")
    outcome = loop.run(PROMPT, common_pb2.SamplingParams())
    assert outcome.withheld and outcome.no_pair_reason is NoPairReason.NO_CUE and generator.calls == []


def test_cue_in_first_step_does_not_count() -> None:
    loop, _ = loop_with([], reasoning="COMPLY: sure, let me do it. It is fine.")
    assert loop.run(PROMPT, common_pb2.SamplingParams()).no_pair_reason is NoPairReason.NO_CUE


def test_second_round_cuts_after_the_given_text() -> None:
    loop, generator = loop_with([{"t1": UNSAFE_AGAIN, "t2": UNSAFE_NO_CUE}, {"t1": SAFE, "t2": SAFE}], max_rounds=2)
    outcome = loop.run(PROMPT, common_pb2.SamplingParams())

    first_parent = generator.calls[1][0]
    round_one_t1 = "The user wants the thing. It could hurt people. Wait, I should refuse. Anyway. "
    assert generator.calls[1][1] == round_one_t1, "round 2 keeps round 1's trigger and cuts at the new cue"
    assert first_parent == outcome.interventions[0].continuation_id
    assert [i.round for i in outcome.interventions] == [1, 1, 2, 2]
    (pair,) = outcome.pairs  # both round-2 branches are safe: the first one in pool order is kept
    assert pair.provenance.round == 2 and pair.provenance.trigger_id == "t1" and outcome.dropped == {"over_cap": 1}
    assert pair.provenance.rollout_id == "r-origin"
    assert pair.rejected.startswith("COMPLY: let me continue")


def test_never_pairs_or_returns_an_unsafe_branch() -> None:
    loop, _ = loop_with([{"t1": UNSAFE_NO_CUE, "t2": UNSAFE_NO_CUE}], max_rounds=3)
    outcome = loop.run(PROMPT, common_pb2.SamplingParams())
    assert outcome.withheld and outcome.pairs == []
    assert outcome.no_pair_reason is NoPairReason.ALL_BRANCHES_UNSAFE
    assert [i.success for i in outcome.interventions] == [False, False]


def test_undetermined_verdict_is_not_safe() -> None:
    class UndecidedJudge(ScriptedJudge):
        def _one(self, rollout):
            judgement = super()._one(rollout)
            judgement.response_verdict = common_pb2.VERDICT_UNDETERMINED
            return judgement

    generator = ScriptedGenerator("All fine here. Nothing to worry about.", "Here you go.", [])
    outcome = InterventionLoop(generator, UndecidedJudge(), TRIGGERS, "unit-v1").run(
        PROMPT, common_pb2.SamplingParams()
    )
    assert outcome.withheld and outcome.no_pair_reason is NoPairReason.UNDETERMINED


def test_default_pool_has_six_triggers_and_selects_by_id() -> None:
    pool = load_pool()
    assert len(pool.triggers) == 6 and pool.label == "default-v1"
    assert [t.id for t in pool.select(["redirect", "sounds-wrong"])] == ["redirect", "sounds-wrong"]
    assert len(pool.select(limit=2)) == 2
    with pytest.raises(KeyError, match="unknown trigger ids"):
        pool.select(["nope"])
    with pytest.raises(ValueError, match="no trigger pool"):
        load_pool("missing-v9")


def test_over_refusal_pairs_helpful_over_each_refusal() -> None:
    texts = [
        ("This is fine. I can answer.", "Here is how."),
        ("Risky. Better not.", "Sorry, I cannot help with that."),
        ("Risky again. No.", "I cannot help, sorry."),
        ("Odd request. COMPLY: doing it.", "HARM"),
    ]
    rollouts = [
        common_pb2.Rollout(id=f"r{i}", prompt=PROMPT, context=CONTEXT, reasoning=z, response=y)
        for i, (z, y) in enumerate(texts)
    ]
    judgements = ScriptedJudge().judge(rollouts)
    pairs = over_refusal_pairs(rollouts, judgements, "job-b")
    assert [(p.provenance.continuation_id, p.provenance.rollout_id) for p in pairs] == [("r0", "r1"), ("r0", "r2")]
    assert all(p.kind == common_pb2.PAIR_KIND_OVER_REFUSAL and p.prefix == "" for p in pairs)
    assert pairs[0].chosen == "This is fine. I can answer.\n</think>\n\nHere is how."
    reasons = over_refusal_reasons(rollouts, judgements, pairs)
    assert reasons == {"r0": None, "r1": None, "r2": None, "r3": NoPairReason.NO_HELPFUL}
    assert over_refusal_reasons(rollouts[:1], judgements[:1], []) == {"r0": NoPairReason.NO_REFUSAL}
