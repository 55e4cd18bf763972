"""Paired bootstrap intervals for "explainer A minus explainer B" over the same examples.

A leaderboard's mean difference says nothing about whether it would survive other examples; the
interval here resamples examples (the pair of values of one example stays together) and a
comparison is a win or a loss only when the interval excludes 0.

A plain numpy percentile bootstrap rather than ``scipy.stats.bootstrap(paired=True)``: its draws
are reproducible by a loop (the tests check that), a constant difference gives the exact
zero-width interval instead of scipy's degenerate-distribution warning and NaN for BCa, and the
mean difference needs no more than percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Fewer pairs give no interval. With n pairs the bootstrap puts all its draws on one example with
# probability n^(1-n) (1/4 at n = 2, 1/27 at n = 3), so its 95% interval is the range of the
# differences and any 2-3 same-signed pairs would read as a win; and no test at 5% can call 5
# same-signed pairs significant (two-sided sign test: p = 2 / 2^5 = 0.0625), 6 it can (0.031).
MIN_PAIRS = 6


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its percentile bootstrap interval at ``confidence``.

    ``a`` and ``b`` are per-example values in the same order; examples where either is NaN (or
    None, e.g. AUROC on a single-class text) are dropped. With no pair every value is NaN; with
    fewer than ``MIN_PAIRS`` pairs the interval is NaN (too few examples to say how the mean varies)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must be in (0, 1)")
    diffs = (a - b)[~(np.isnan(a) | np.isnan(b))]
    nan = float("nan")
    if len(diffs) == 0:
        return nan, nan, nan
    mean = float(diffs.mean())
    if len(diffs) < MIN_PAIRS:
        return mean, nan, nan
    rng = np.random.default_rng(seed)
    resampled = diffs[rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return mean, float(low), float(high)


def verdict(low: float, high: float) -> str:
    """win / loss when the interval excludes 0, tie when it holds 0, n/a without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    return "win" if low > 0 else "loss" if high < 0 else "tie"


@dataclass
class Comparison:
    """``explainer`` minus ``baseline`` on ``metric``, paired over ``n_pairs`` examples."""

    metric: str
    explainer: str
    baseline: str
    n_pairs: int
    difference: float
    low: float
    high: float
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def paired_values(first: Mapping, second: Mapping, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The two explainers' ``metric`` on the examples both scored, paired by example id.

    ``first`` and ``second`` are per-example blocks: ``{"ids": [...], metric: [...]}``."""
    values = dict(zip(second["ids"], second[metric], strict=True))
    shared = [(v, values[i]) for i, v in zip(first["ids"], first[metric], strict=True) if i in values]
    a, b = (np.array([pair[k] for pair in shared], dtype=np.float64) for k in (0, 1))
    return a, b


def compare_with_best(
    metric: str,
    name: str,
    per_example: Mapping,
    others: Mapping[str, tuple[float, Mapping]],
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison | None:
    """``name`` minus the best of ``others`` (by their mean ``metric``) with a paired interval.

    ``others`` maps an explainer to (its mean of ``metric``, its per-example block); None when no
    other explainer has a finite mean."""
    # Blocks without ``metric`` come from results saved before it was compared: nothing to pair.
    finite = {other: value for other, value in others.items() if value[0] is not None and np.isfinite(value[0]) and metric in value[1]}
    if not finite or metric not in per_example:
        return None
    best = max(finite, key=lambda other: finite[other][0])
    a, b = paired_values(per_example, finite[best][1], metric)
    difference, low, high = paired_bootstrap(a, b, n_resamples, seed, confidence)
    n_pairs = int((~(np.isnan(a) | np.isnan(b))).sum())
    return Comparison(metric, name, best, n_pairs, difference, low, high, verdict(low, high))
