"""Paired bootstrap intervals against cases computed by hand or by a plain loop."""

import numpy as np
import pytest

from expnet.metrics.bootstrap import compare_with_best, paired_bootstrap, paired_values, verdict


def test_constant_difference_gives_a_zero_width_interval_at_that_value():
    a = np.array([0.5, 0.7, 0.2, 0.9, 0.1, 0.4])
    assert paired_bootstrap(a, a - 0.25) == pytest.approx((0.25, 0.25, 0.25))


def test_seeded_interval_equals_a_brute_force_loop():
    rng = np.random.default_rng(7)
    a, b = rng.random(30), rng.random(30)
    mean, low, high = paired_bootstrap(a, b, n_resamples=500, seed=3, confidence=0.9)
    draws = np.random.default_rng(3)
    means = []
    for _ in range(500):
        picked = draws.integers(0, 30, size=30)
        means.append(sum(a[i] - b[i] for i in picked) / 30)
    means.sort()
    # numpy's default percentile interpolates linearly between order statistics: 5% of 499 gaps.
    position = 0.05 * 499
    expected_low = means[int(position)] + (position - int(position)) * (means[int(position) + 1] - means[int(position)])
    assert mean == pytest.approx(float(np.mean(a - b)))
    assert low == pytest.approx(expected_low)
    assert high == pytest.approx(float(np.percentile(means, 95)))
    assert low < mean < high


def test_nan_pairs_are_dropped_and_tiny_samples_have_no_interval():
    a = [1.0, np.nan, 0.5, None]
    b = [0.0, 0.3, np.nan, 0.2]
    # Only the first example has both values: its difference, no interval.
    mean, low, high = paired_bootstrap(a, b)
    assert mean == 1.0 and np.isnan(low) and np.isnan(high)
    assert all(np.isnan(paired_bootstrap([np.nan], [1.0])))
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_fewer_than_six_pairs_give_no_verdict():
    from expnet.metrics.bootstrap import MIN_PAIRS

    # Two same-signed pairs: every interval would be [min, max] of the differences, a "win".
    mean, low, high = paired_bootstrap([1.0, 2.0], [0.0, 0.0])
    assert mean == 1.5 and np.isnan(low) and verdict(low, high) == "n/a"
    five = paired_bootstrap(np.ones(MIN_PAIRS - 1), np.zeros(MIN_PAIRS - 1))
    six = paired_bootstrap(np.ones(MIN_PAIRS), np.zeros(MIN_PAIRS))
    assert verdict(*five[1:]) == "n/a" and verdict(*six[1:]) == "win"


def test_verdict_needs_the_interval_to_exclude_zero():
    assert verdict(0.01, 0.2) == "win"
    assert verdict(-0.3, -0.1) == "loss"
    assert verdict(-0.1, 0.2) == "tie"
    assert verdict(0.0, 0.2) == "tie"
    assert verdict(float("nan"), float("nan")) == "n/a"


def test_compare_with_best_pairs_by_id_against_the_best_mean():
    ours = {"ids": list("abcdef"), "f1": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7]}
    weak = {"ids": list("abcdef"), "f1": [0.1] * 6}
    # Listed in another order: pairing is by id, not position.
    strong = {"ids": list("cabfde"), "f1": [0.6, 0.8, 0.7, 0.6, 0.8, 0.7]}
    assert paired_values(ours, strong, "f1")[1].tolist() == [0.8, 0.7, 0.6, 0.8, 0.7, 0.6]
    result = compare_with_best("f1", "expnet", ours, {"weak": (0.1, weak), "strong": (0.7, strong), "broken": (None, weak)})
    assert result.baseline == "strong" and result.n_pairs == 6
    assert (result.difference, result.low, result.high) == pytest.approx((0.1, 0.1, 0.1))
    assert result.verdict == "win"
    assert compare_with_best("f1", "expnet", ours, {"broken": (float("nan"), weak)}) is None
