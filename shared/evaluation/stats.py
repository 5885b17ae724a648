"""Confidence intervals for the evaluation's rates (a mean of 0/1 outcomes) and paired differences, and McNemar's test.

The report's default is closed-form: the Wilson score interval for a rate, Newcombe's hybrid score interval
(Newcombe 1998, paired data, method 10) for the adapter-minus-base difference over the same prompts, and the exact
McNemar test (two-sided binomial test on the discordant prompts) for whether the adapter changed anything. On small n
these stay honest where the bootstrap does not: 0 harmful of 8 gives the percentile bootstrap [0, 0] but Wilson
[0, 32.4%].

    wilson([0] * 8).high                              # 0.3244
    mcnemar_exact(treatment, baseline)                 # p-value; 1.0 when no prompt changed
    newcombe_paired(treatment, baseline).low            # lower bound of mean(treatment) - mean(baseline)

The percentile bootstrap stays available (`bootstrap_mean`, `paired_difference`):

Percentile bootstrap (Efron): resample the items with replacement `resamples` times, take the mean of each resample,
and report the (1-c)/2 and (1+c)/2 quantiles of those means. Seeded, so a report is reproducible. The paired
version resamples *prompts* and takes the adapter-minus-base difference on each, which is the right interval when
both models answered the same prompts (their outcomes are correlated through the prompt).

    interval = bootstrap_mean([1, 0, 0, 1], resamples=2000, seed=0)
    interval.value, interval.low, interval.high, interval.n      # 0.5, 0.0, 1.0, 4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

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


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence is {confidence}; it must lie in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _binary(values: Sequence[float], name: str = "values") -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or not np.all((data == 0.0) | (data == 1.0)):
        raise ValueError(f"{name} must be a one-dimensional sequence of 0/1 outcomes")
    return data


def wilson_bounds(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n` (n > 0)."""
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 and n the bound is exactly the rate (rounding would leave 1e-17 off it).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def wilson(values: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The mean of 0/1 `values` with its Wilson score interval."""
    data = _binary(values)
    if data.size == 0:
        return Interval(None, None, None, 0)
    low, high = wilson_bounds(int(data.sum()), int(data.size), confidence)
    return Interval(float(data.mean()), low, high, int(data.size))


def _table(treatment: Sequence[float], baseline: Sequence[float]) -> tuple[int, int, int, int]:
    """(both 1, treatment only, baseline only, both 0) over paired 0/1 outcomes."""
    if len(treatment) != len(baseline):
        raise ValueError(
            f"a paired difference needs one baseline value per treatment value ({len(treatment)} vs {len(baseline)})"
        )
    t, b = _binary(treatment, "treatment"), _binary(baseline, "baseline")
    return (
        int(np.sum((t == 1) & (b == 1))),
        int(np.sum((t == 1) & (b == 0))),
        int(np.sum((t == 0) & (b == 1))),
        int(np.sum((t == 0) & (b == 0))),
    )


def newcombe_paired(
    treatment: Sequence[float], baseline: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE
) -> Interval:
    """mean(treatment) - mean(baseline) over the same items with Newcombe's hybrid score interval (method 10).

    The Wilson limits of both rates, combined with the correlation of the paired outcomes (phi, set to 0 when a
    margin is empty, and shrunk toward 0 by n/2 as Newcombe prescribes when positive)."""
    a, b, c, d = _table(treatment, baseline)
    n = a + b + c + d
    if n == 0:
        return Interval(None, None, None, 0)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_bounds(a + b, n, confidence)
    l2, u2 = wilson_bounds(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins:
        cross = a * d - b * c
        corrected = max(cross - n / 2, 0.0) if cross > 0 else cross
        phi = corrected / math.sqrt(margins)
    delta = p1 - p2
    low = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return Interval(delta, max(-1.0, low), min(1.0, high), n)


def mcnemar_exact(treatment: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value: a binomial(b + c, 1/2) test on the discordant items (1.0 when none)."""
    _, b, c, _ = _table(treatment, baseline)
    discordant = b + c
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(b, c) + 1)) / 2**discordant
    return min(1.0, 2 * tail)
