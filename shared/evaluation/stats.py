"""Bootstrap confidence intervals for the evaluation's rates: a mean of 0/1 outcomes and a paired difference.

Percentile bootstrap (Efron): resample the items with replacement `resamples` times, take the mean of each resample,
and report the (1-c)/2 and (1+c)/2 quantiles of those means. Seeded, so a report is reproducible. The paired
version resamples *prompts* and takes the adapter-minus-base difference on each, which is the right interval when
both models answered the same prompts (their outcomes are correlated through the prompt).

    interval = bootstrap_mean([1, 0, 0, 1], resamples=2000, seed=0)
    interval.value, interval.low, interval.high, interval.n      # 0.5, 0.0, 1.0, 4
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
# Resamples drawn at once, so that a large set (MATH-500 x 10,000 resamples) never builds one huge index array.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """An observed mean and its bootstrap interval; every figure is None when there were no items."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def bootstrap_mean(
    values: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """The mean of `values` with its percentile bootstrap interval."""
    data = _checked(values, resamples, confidence)
    if data.size == 0:
        return Interval(None, None, None, 0)
    low, high = _percentiles(_resampled_means(data, resamples, seed), confidence)
    return Interval(float(data.mean()), low, high, int(data.size))


def paired_difference(
    treatment: Sequence[float],
    baseline: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """mean(treatment) - mean(baseline) over the same items, with a paired percentile bootstrap interval.

    Item i of both sequences must be the same prompt; the interval resamples prompts, keeping each pair together.
    """
    if len(treatment) != len(baseline):
        raise ValueError(
            f"a paired difference needs one baseline value per treatment value ({len(treatment)} vs {len(baseline)})"
        )
    return bootstrap_mean(
        np.asarray(treatment, dtype=float) - np.asarray(baseline, dtype=float),
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )


def _checked(values: Sequence[float], resamples: int, confidence: float) -> np.ndarray:
    if resamples < 1:
        raise ValueError(f"resamples is {resamples}; it must be at least 1 (1000 or more for a usable interval)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence is {confidence}; it must lie in (0, 1), e.g. 0.95")
    data = np.asarray(values, dtype=float)
    if data.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("values hold NaN or infinity: drop undetermined items before taking the mean")
    return data


def _resampled_means(data: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // data.size)
    means = []
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        means.append(data[rng.integers(0, data.size, size=(count, data.size))].mean(axis=1))
    return np.concatenate(means)


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)
