"""training/intervals.py: the Wilson interval against the textbook's numbers, and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from training.intervals import bootstrap, bootstrapped, proportion, wilson


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3.
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_it_gives_the_textbook_wilson_interval(successes, n, low, high):
    assert wilson(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_a_proportion_carries_its_interval_and_count():
    assert proportion(3, 4) == {"value": 0.75, "low": pytest.approx(0.3006, abs=1e-4),
                                "high": pytest.approx(0.9544, abs=1e-4), "n": 4, "interval": "wilson"}
    with pytest.raises(ValueError):
        wilson(5, 4)


def test_the_bootstrap_brackets_the_mean_as_wide_as_its_standard_error():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    low, high = bootstrap(values)
    half = 1.96 * values.std() / np.sqrt(len(values))  # the normal interval, which the bootstrap approaches
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap(values) == (low, high)  # seeded: the same values give the same interval
    assert bootstrap(np.full(10, 3.0)) == (3.0, 3.0)


def test_a_ratio_is_bootstrapped_over_examples_not_over_its_parts():
    # Two documents: (total NLL, tokens). The statistic is the ratio of sums, as perplexity is.
    docs = np.array([[10.0, 5.0], [30.0, 10.0], [4.0, 4.0]])
    result = bootstrapped(docs, lambda d: d[:, 0].sum() / d[:, 1].sum(), samples=200)
    assert result["value"] == pytest.approx(44 / 19) and result["n"] == 3
    assert 1.0 <= result["low"] <= result["value"] <= result["high"] <= 3.0
