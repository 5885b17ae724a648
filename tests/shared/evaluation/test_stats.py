"""Bootstrap intervals: coverage on known Bernoulli data, degenerate sets, no items, determinism, pairing."""

from __future__ import annotations

import numpy as np
import pytest

from shared.evaluation import stats
from shared.evaluation.stats import Interval, bootstrap_mean, paired_difference


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_intervals_cover_the_true_rate_about_95_percent_of_the_time(rate: float) -> None:
    rng = np.random.default_rng(1234)
    trials = 150
    covered = 0
    for trial in range(trials):
        sample = (rng.random(200) < rate).astype(float)
        interval = bootstrap_mean(sample, resamples=1000, seed=trial)
        covered += interval.low <= rate <= interval.high
    # Percentile intervals for n=200 cover close to 95%; 150 trials put the observed share within a few points.
    assert 0.87 <= covered / trials <= 0.995


def test_interval_brackets_the_observed_mean_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(7)
    small = bootstrap_mean((rng.random(40) < 0.3).astype(float), seed=0)
    large = bootstrap_mean((rng.random(4000) < 0.3).astype(float), seed=0)
    for interval in (small, large):
        assert interval.low <= interval.value <= interval.high
    assert (large.high - large.low) < (small.high - small.low) / 4
    assert (small.n, large.n) == (40, 4000)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_equal_outcomes_give_a_zero_width_interval(value: float) -> None:
    assert bootstrap_mean([value] * 25, seed=3) == Interval(value, value, value, 25)


def test_no_items_give_no_figures() -> None:
    assert bootstrap_mean([], seed=0) == Interval(None, None, None, 0)
    assert paired_difference([], [], seed=0) == Interval(None, None, None, 0)
    assert bootstrap_mean([]).as_dict() == {"value": None, "low": None, "high": None, "n": 0}


def test_the_seed_fixes_the_interval() -> None:
    data = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    first = bootstrap_mean(data, seed=11)
    assert bootstrap_mean(data, seed=11) == first
    others = {(bootstrap_mean(data, seed=seed, resamples=1000).low) for seed in range(12, 20)}
    assert len(others | {first.low}) > 1


def test_large_sets_resample_in_chunks_with_the_same_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (np.random.default_rng(5).random(3000) < 0.4).astype(float)
    whole = bootstrap_mean(data, resamples=2000, seed=0)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 3000 * 7)  # 7 resamples per chunk
    chunked = bootstrap_mean(data, resamples=2000, seed=0)
    assert chunked.value == whole.value
    assert abs(chunked.low - whole.low) < 0.01 and abs(chunked.high - whole.high) < 0.01


def test_confidence_sets_the_width() -> None:
    data = (np.random.default_rng(9).random(300) < 0.5).astype(float)
    wide = bootstrap_mean(data, seed=0, confidence=0.99)
    narrow = bootstrap_mean(data, seed=0, confidence=0.80)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    outcomes = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert paired_difference(outcomes, outcomes, seed=0) == Interval(0.0, 0.0, 0.0, 7)


def test_pairing_gives_a_narrower_interval_than_independent_samples() -> None:
    rng = np.random.default_rng(21)
    base = (rng.random(200) < 0.5).astype(float)
    treated = base.copy()
    treated[rng.choice(np.flatnonzero(base == 1.0), size=20, replace=False)] = 0.0  # 20 prompts turn safe
    paired = paired_difference(treated, base, seed=0)
    unpaired_low = bootstrap_mean(treated, seed=0).low - bootstrap_mean(base, seed=1).high
    assert paired.value == pytest.approx(-0.1)
    assert paired.high < 0.0  # the paired interval sees the improvement; the unpaired bounds overlap
    assert unpaired_low < paired.low


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_mean([1.0, 0.0], **kwargs)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean([1.0, float("nan")])
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_mean([[1.0, 0.0]])
    with pytest.raises(ValueError, match="one baseline value per treatment value"):
        paired_difference([1.0], [1.0, 0.0])


# Closed-form intervals and McNemar's test, against values computed by hand from their formulas.


def test_wilson_matches_known_values() -> None:
    from shared.evaluation.stats import wilson

    # 0 of 10: upper = z^2 / (n + z^2) = 3.8415 / 13.8415
    assert wilson([0.0] * 10) == Interval(0.0, 0.0, pytest.approx(0.27753, abs=1e-5), 10)
    assert wilson([1.0] * 10).low == pytest.approx(1 - 0.27753, abs=1e-5) and wilson([1.0] * 10).high == 1.0
    half = wilson([1.0] * 5 + [0.0] * 5)
    assert (half.low, half.high) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))
    # 0 harmful of 8: the bootstrap says [0, 0]; Wilson keeps the honest upper bound
    assert bootstrap_mean([0.0] * 8).high == 0.0
    assert wilson([0.0] * 8).high == pytest.approx(0.32441, abs=1e-5)
    assert wilson([]) == Interval(None, None, None, 0)


def test_wilson_refuses_values_that_are_not_outcomes() -> None:
    from shared.evaluation.stats import wilson

    with pytest.raises(ValueError, match="0/1"):
        wilson([0.5, 1.0])


def test_mcnemar_exact_matches_the_binomial_tail() -> None:
    from shared.evaluation.stats import mcnemar_exact

    # 1 vs 9 discordant: 2 * P(X <= 1 | n=10, 1/2) = 2 * 11 / 1024
    assert mcnemar_exact([1.0] + [0.0] * 9, [0.0] + [1.0] * 9) == pytest.approx(22 / 1024)
    # 0 vs 5: 2 / 32; concordant prompts do not count
    assert mcnemar_exact([0.0] * 5 + [1.0] * 7, [1.0] * 5 + [1.0] * 7) == pytest.approx(2 / 32)
    assert mcnemar_exact([1.0, 0.0], [1.0, 0.0]) == 1.0
    assert mcnemar_exact([1.0, 0.0], [0.0, 1.0]) == 1.0  # one each way: min(1, 2 * 3/4)


def test_newcombe_paired_interval() -> None:
    from shared.evaluation.stats import newcombe_paired, wilson_bounds

    # No prompt changed and all harmful: not the degenerate [0, 0] of the bootstrap.
    same = newcombe_paired([1.0] * 10, [1.0] * 10)
    assert same.value == 0.0 and same.low == pytest.approx(-0.27753, abs=1e-5) and same.high > 0.27
    # No discordance information (phi = 0 when a margin is empty): the interval is the Wilson limits combined.
    _, u1 = wilson_bounds(0, 40)
    l2, u2 = wilson_bounds(40, 40)
    drop = newcombe_paired([0.0] * 40, [1.0] * 40)
    assert drop.value == -1.0 and drop.low == pytest.approx(max(-1.0, -1 - ((u2 - 1) ** 2 + (l2 - 1) ** 2) ** 0.5))
    assert drop.high == pytest.approx(-1 + ((u1 - 0) ** 2 + (1 - l2) ** 2) ** 0.5)
    # A real improvement on half the prompts is seen; the interval brackets the observed difference.
    shift = newcombe_paired([0.0] * 20 + [1.0] * 20, [1.0] * 40)
    assert shift.low < -0.5 < shift.high < 0.0


def test_newcombe_paired_covers_about_95_percent() -> None:
    from shared.evaluation.stats import newcombe_paired

    rng = np.random.default_rng(99)
    covered, trials = 0, 400
    for _ in range(trials):
        base = (rng.random(60) < 0.6).astype(float)
        treated = np.where(rng.random(60) < 0.3, 0.0, base)  # 30% of harmful prompts turn safe: true delta -0.18
        interval = newcombe_paired(treated, base)
        covered += interval.low <= -0.18 <= interval.high
    assert 0.90 <= covered / trials <= 0.99
