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
