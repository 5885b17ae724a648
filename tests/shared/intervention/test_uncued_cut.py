"""`cut_for`'s uncued_step: where an unsafe trace without a compliance cue from step 2 on is cut, when asked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config.intervention import InterventionSettings
from shared.intervention.decisions import Cut, NoPairReason, cut_for
from shared.protos.intervene.v1 import common_pb2

L = common_pb2
LABELS = {
    "n": L.STEP_LABEL_NEUTRAL,
    "c": L.STEP_LABEL_COMPLIANCE_CUE,
    "u": L.STEP_LABEL_UNSAFE,
    "s": L.STEP_LABEL_SAFETY_TRIGGER,
}


def _judged(labels: str, first_cue: int = 0, reasoning_verdict: int = L.VERDICT_HARMFUL):
    steps = [L.Step(index=i + 1, start=10 * i, end=10 * (i + 1), label=LABELS[c]) for i, c in enumerate(labels)]
    rollout = L.Rollout(id="r", reasoning="x" * (10 * len(labels)), response="y")
    judgement = L.Judgement(
        steps=steps,
        first_cue=first_cue,
        reasoning_verdict=reasoning_verdict,
        response_verdict=L.VERDICT_HARMFUL,
    )
    return rollout, judgement


def test_without_the_setting_an_uncued_trace_makes_no_cut() -> None:
    assert cut_for(*_judged("cuuu", first_cue=1)) is NoPairReason.NO_CUE
    assert cut_for(*_judged("nnnn")) is NoPairReason.NO_CUE


def test_a_cue_from_step_2_on_wins_over_the_setting() -> None:
    assert cut_for(*_judged("nncu", first_cue=3), uncued_step=2) == Cut(step=3, offset=20)


def test_an_uncued_trace_is_cut_at_its_first_unsafe_step_from_2_on() -> None:
    # A cue at step 1 (the paper never cuts there), then unsafe steps: the first of them.
    assert cut_for(*_judged("cnuu", first_cue=1), uncued_step=2) == Cut(step=3, offset=20)


def test_an_uncued_trace_with_no_unsafe_step_is_cut_at_the_given_step() -> None:
    assert cut_for(*_judged("nnnn"), uncued_step=2) == Cut(step=2, offset=10)
    assert cut_for(*_judged("nnnn"), uncued_step=3) == Cut(step=3, offset=20)
    assert cut_for(*_judged("nn"), uncued_step=3) is NoPairReason.NO_CUE, "the trace is shorter than the step"
    assert cut_for(*_judged("n"), uncued_step=2) is NoPairReason.NO_CUE


def test_safe_and_later_rounds_are_unchanged() -> None:
    rollout, judgement = _judged("nnnn", reasoning_verdict=L.VERDICT_SAFE)
    judgement.response_verdict = L.VERDICT_SAFE
    assert cut_for(rollout, judgement, uncued_step=2) is NoPairReason.SAFE
    rollout, judgement = _judged("nnnn")
    rollout.round = 1
    assert cut_for(rollout, judgement, uncued_step=2) is NoPairReason.NO_CUE, "later rounds cut at new cues only"


def test_the_setting_refuses_step_1() -> None:
    with pytest.raises(ValidationError, match="uncued_cut_step is 1"):
        InterventionSettings(uncued_cut_step=1, auth_disabled=True)
    assert InterventionSettings(uncued_cut_step=2, auth_disabled=True).uncued_cut_step == 2
