"""95% intervals for the evaluate stage's metrics. No torch.

- `wilson`: a proportion's interval (accuracy, exact match): the Wilson score interval, which keeps
  inside [0, 1] and stays honest at 0 or n successes, where the normal approximation collapses.
- `bootstrap`: any other statistic (perplexity, macro-F1, pass@k): the percentile bootstrap over
  examples, with a seeded generator so the same results give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n`; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..{n}, not {successes}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile-bootstrap interval of `statistic` (default: the mean) over the rows of `values`
    (one row per example; a 2-D array carries several numbers per example, a ratio's two sums)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(samples, n))
    if statistic is None:  # the common case, vectorised
        stats = values[draws].mean(axis=1)
    else:
        stats = np.array([statistic(values[d]) for d in draws])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """A proportion as the stage reports it: value, Wilson interval, n."""
    low, high = wilson(successes, n)
    return {"value": successes / n if n else math.nan, "low": low, "high": high, "n": n, "interval": "wilson"}


def bootstrapped(values: np.ndarray, statistic: Callable[[np.ndarray], float] | None = None,
                 *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """A statistic of per-example values as the stage reports it: value, bootstrap interval, n."""
    values = np.asarray(values, dtype=np.float64)
    value = float(values.mean()) if statistic is None else float(statistic(values))
    low, high = bootstrap(values, statistic, samples=samples, seed=seed)
    return {"value": value, "low": low, "high": high, "n": len(values), "interval": "bootstrap"}
