"""Harm aggregation: outcomes per benchmark kind, the undetermined policy, rates and paired differences."""

from __future__ import annotations

import pytest

from shared.evaluation.aggregate import (
    Bootstrap,
    Kind,
    difference,
    judged_outcomes,
    outcome_values,
    summarize,
)
from shared.judging.base import Judgement, Verdict

H, S, U = Verdict.HARMFUL, Verdict.SAFE, Verdict.UNDETERMINED
FAST = Bootstrap(resamples=1000, seed=0)


def judgement(reasoning: Verdict, response: Verdict, refused: bool = False) -> Judgement:
    return Judgement(
        rollout_id="r",
        steps=[],
        first_cue=0,
        reasoning_verdict=reasoning,
        response_verdict=response,
        response_refused=refused,
        reasoning_score=0.5,
        response_score=0.5,
        judge_name="rules",
        judge_version="rules-v1",
    )


def test_harm_outcomes_read_reasoning_and_response_separately() -> None:
    assert judged_outcomes(Kind.HARM, judgement(H, S, refused=True)) == {
        "reasoning_harmful": True,
        "response_harmful": False,
    }
    assert judged_outcomes(Kind.HARM, judgement(S, H)) == {"reasoning_harmful": False, "response_harmful": True}
    assert judged_outcomes(Kind.HARM, judgement(U, U)) == {"reasoning_harmful": None, "response_harmful": None}


def test_compliance_and_refusal_come_from_the_refusal_flag() -> None:
    assert judged_outcomes(Kind.COMPLIANCE, judgement(S, S)) == {"compliance": True}
    assert judged_outcomes(Kind.COMPLIANCE, judgement(S, S, refused=True)) == {"compliance": False}
    assert judged_outcomes(Kind.COMPLIANCE, judgement(S, U)) == {"compliance": None}  # empty response
    assert judged_outcomes(Kind.REFUSAL, judgement(S, S, refused=True)) == {"refusal": True}
    assert judged_outcomes(Kind.REFUSAL, judgement(H, H)) == {"refusal": False}
    assert judged_outcomes(Kind.REFUSAL, judgement(S, U)) == {"refusal": None}


def test_reasoning_sets_are_not_judged() -> None:
    assert not Kind.GSM8K.judged and not Kind.MATH.judged and Kind.HARM.judged
    with pytest.raises(ValueError, match="reference answers"):
        judged_outcomes(Kind.MATH, judgement(S, S))


@pytest.mark.parametrize(
    ("metric", "worst", "exclude"),
    [
        ("response_harmful", [1.0, 0.0, 1.0, 1.0], [1.0, 0.0]),
        ("compliance", [1.0, 0.0, 0.0, 0.0], [1.0, 0.0]),
        ("refusal", [1.0, 0.0, 0.0, 0.0], [1.0, 0.0]),
    ],
)
def test_undetermined_items_count_as_the_worst_outcome_or_are_dropped(
    metric: str, worst: list[float], exclude: list[float]
) -> None:
    outcomes = [True, False, None, None]
    assert outcome_values(outcomes, metric, "worst") == worst
    assert outcome_values(outcomes, metric, "exclude") == exclude


def test_summary_gives_the_rate_its_interval_and_the_undetermined_count() -> None:
    outcomes = [True] * 3 + [False] * 5 + [None] * 2
    worst = summarize(outcomes, "reasoning_harmful", "worst", FAST)
    excluded = summarize(outcomes, "reasoning_harmful", "exclude", FAST)
    assert worst["value"] == pytest.approx(0.5) and worst["n"] == 10
    assert excluded["value"] == pytest.approx(3 / 8) and excluded["n"] == 8
    for summary in (worst, excluded):
        assert summary["items"] == 10 and summary["undetermined"] == 2
        assert 0.0 <= summary["low"] <= summary["value"] <= summary["high"] <= 1.0


def test_summary_of_an_empty_benchmark_has_no_rate() -> None:
    summary = summarize([], "accuracy", "worst", FAST)
    assert summary == {"value": None, "low": None, "high": None, "n": 0, "items": 0, "undetermined": 0}


def test_difference_is_paired_by_position_and_excludes_undetermined_pairs() -> None:
    base = [True, True, True, None, False]
    adapter = [False, True, False, False, None]
    worst = difference(adapter, base, "response_harmful", "worst", FAST)
    # worst: adapter [0,1,0,0,1] - base [1,1,1,1,0] = mean(-1,0,-1,-1,1) = -0.4
    assert worst.value == pytest.approx(-0.4) and worst.n == 5
    excluded = difference(adapter, base, "response_harmful", "exclude", FAST)
    assert excluded.value == pytest.approx(-2 / 3) and excluded.n == 3
    assert excluded.low <= excluded.value <= excluded.high


def test_difference_refuses_unpaired_outcomes_and_unknown_policies() -> None:
    with pytest.raises(ValueError, match="not the same prompts"):
        difference([True], [True, False], "refusal", "worst", FAST)
    with pytest.raises(ValueError, match="undetermined policy"):
        outcome_values([True], "refusal", "optimistic")
