"""Intervals and tests for a study's numbers: percentile bootstrap, paired bootstrap, McNemar's test.

Pure numpy and scipy. Every resampling is seeded, so the same table always gives the same summary.

* ``bootstrap_mean``: the mean and its percentile-bootstrap interval (resample images with replacement).
* ``paired_difference``: mean(a) - mean(b) over the same images and its paired-bootstrap interval (one index draw
  resamples both columns, so the pairing is kept), with McNemar's test when both columns are hit/miss.
* ``mcnemar``: b = first hit & second miss, c = first miss & second hit; the exact two-sided binomial test when
  b + c < ``EXACT_BELOW`` (the chi-square approximation is poor there), else chi-square with continuity correction
  (|b - c| - 1)^2 / (b + c) on one degree of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0
EXACT_BELOW = 25  # discordant pairs under which McNemar's test is the exact binomial one
_CHUNK = 200  # resamples drawn at once (bounds memory: _CHUNK x n indices)


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _percentiles(samples: np.ndarray, confidence: float) -> list[float | None]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return [_number(low), _number(high)]


def _resampled(count: int, statistic: Callable[[np.ndarray], np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """``statistic`` of ``resamples`` index draws (each a row of ``count`` indices with replacement)."""
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, resamples, _CHUNK):
        draws = rng.integers(0, count, size=(min(_CHUNK, resamples - start), count))
        values.append(statistic(draws))
    return np.concatenate(values)


def bootstrap_mean(
    values: np.ndarray, *, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED
) -> dict[str, float | list | None]:
    """``{"value": mean, "ci": [low, high], "n": count}`` of the finite values (booleans count as 0/1).

    No value gives ``value`` and ``ci`` null; one value gives a zero-width interval.
    """
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    means = _resampled(data.size, lambda draws: data[draws].mean(axis=1), resamples, seed)
    return {"value": _number(data.mean()), "ci": _percentiles(means, confidence), "n": int(data.size)}


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired hits: the discordant counts, the statistic and the two-sided p-value."""

    first_only: int  # b: the first model hits, the second misses
    second_only: int  # c: the first misses, the second hits
    statistic: float | None  # chi-square with continuity correction; None for the exact test
    p_value: float
    test: str  # "exact binomial" | "chi-square (continuity corrected)"


def mcnemar(first_only: int, second_only: int) -> McNemar:
    """McNemar's test from the discordant counts b and c (see the module docstring for which form is used)."""
    from scipy import stats

    b, c = int(first_only), int(second_only)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got {b} and {c}")
    discordant = b + c
    if discordant == 0:
        return McNemar(b, c, None, 1.0, "exact binomial")
    if discordant < EXACT_BELOW:
        p_value = float(stats.binomtest(b, discordant, 0.5).pvalue)
        return McNemar(b, c, None, min(1.0, p_value), "exact binomial")
    statistic = (abs(b - c) - 1.0) ** 2 / discordant
    return McNemar(b, c, statistic, float(stats.chi2.sf(statistic, 1)), "chi-square (continuity corrected)")


def paired_difference(
    first: np.ndarray,
    second: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> dict[str, object]:
    """mean(first) - mean(second) over the images where both are finite, its paired-bootstrap interval, and for
    hit/miss columns McNemar's test (``p_value``, ``test``, ``first_only``, ``second_only``)."""
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired columns must have one length, got {a.size} and {b.size}")
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    result: dict[str, object] = {"n": int(a.size)}
    if a.size == 0:
        return {**result, "difference": None, "ci": [None, None], "p_value": None}
    differences = a - b
    samples = _resampled(a.size, lambda draws: differences[draws].mean(axis=1), resamples, seed)
    result.update(difference=_number(differences.mean()), ci=_percentiles(samples, confidence))
    if np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all():
        test = mcnemar(int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1))))
        result.update(p_value=test.p_value, test=test.test, first_only=test.first_only, second_only=test.second_only)
    else:
        result["p_value"] = None
    return result
