"""Agreement and ratings from pairwise judgements: pure Python and numpy, no Django.

- krippendorff_alpha_nominal: α = 1 − D_o/D_e over the units with at least two values
  (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), via the coincidence matrix.
- cohen_kappa: κ = (p_o − p_e)/(1 − p_e) for two raters on the units both rated.
- bradley_terry: maximum-likelihood ratings on the Elo scale, as FastChat's Chatbot Arena computes
  them: P(i beats j) = 1/(1 + 10^((R_j − R_i)/400)), R = 1000 + 400·θ with Σθ = 0; a tie (and a
  "both bad") counts half a win to each side; battles are collapsed into (i, j, outcome) cells; the
  bootstrap redraws the cells' counts from a multinomial (seeded) and refits; the CI is the 2.5th to
  97.5th percentile; rank_i = 1 + #{j : lower_j > upper_i}, so models whose CIs overlap share a rank.
  FastChat fits with L-BFGS; this fits with Newton's method (the Hessian is a weighted graph
  Laplacian, solved by least squares on the Σθ = 0 subspace), which reaches the same optimum.

Where the votes cannot bound a rating, FastChat's fit has no maximum and reports wherever its
iteration stopped (one vote A > B: a 2,467-point gap, and a zero-width bootstrap interval, since one
vote resamples into itself). This module says so instead:
- a fit without a maximum (`has_maximum`: some models never lost a point to the rest) uses a stated
  weak prior, the same for every model: PRIOR_TIES virtual tie(s) of each model against a reference
  at the mean (1000). It keeps every estimate finite; votes that have a maximum are fitted without
  it, exactly as FastChat fits them.
- a model that won every battle ("unbeaten") has no upper bound: its interval is open above (+inf);
  one that lost every battle ("never won") is open below. So is a replicate's value for a model
  unbeaten (never winning, or absent) in that resample, so a side that more than 2.5% of the
  resamples leave unbounded is open.
- an interval is at least as wide as the normal approximation from the fit's curvature (±1.96
  standard errors): with a handful of votes the bootstrap alone hardly varies.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

LN10 = math.log(10)
ELO_BASE = 1000.0
ELO_SCALE = 400.0
PRIOR_TIES = 1.0
"""Virtual ties of every model against a reference at the mean, in a fit whose votes leave some
rating unbounded: about a normal prior with a standard deviation of 350 Elo, weak beside real votes."""
Z95 = 1.959964


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable | None]]) -> float | None:
    """Nominal α of units given as the values their coders gave (None = missing). None when
    undefined: fewer than two pairable values, or a single category overall (no expected
    disagreement)."""
    coincidences: Counter = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidences[c, k] += pairs / (m - 1)
    if not coincidences:
        return None
    marginals: Counter = Counter()
    for (c, _), o in coincidences.items():
        marginals[c] += o
    n = sum(marginals.values())
    observed = sum(o for (c, k), o in coincidences.items() if c != k)
    expected = (n * n - sum(n_c * n_c for n_c in marginals.values())) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """κ of two raters' labels of the same units, in the same order. None when undefined (no
    units, or both raters always gave one and the same label)."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same units")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class Rating:
    """`lower` is -inf / `upper` is +inf where the votes set no bound on that side."""

    model: str
    elo: float
    lower: float
    upper: float
    rank: int
    battles: int
    unbeaten: bool = False  # won every battle
    never_won: bool = False  # lost every battle
    prior: bool = False  # the votes had no maximum-likelihood fit: fitted with the weak prior (all models alike)


def _cells(battles: Iterable[tuple[str, str, float]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(models, i, j, outcome, count): the battles collapsed into unique (i, j, outcome) cells."""
    counts: Counter = Counter()
    for a, b, y in battles:
        if a == b:
            raise ValueError(f"a battle needs two different models, not {a!r} twice")
        counts[a, b, float(y)] += 1
    models = sorted({m for a, b, _ in counts for m in (a, b)})
    index = {m: k for k, m in enumerate(models)}
    keys = list(counts)
    i = np.array([index[a] for a, _, _ in keys], dtype=int)
    j = np.array([index[b] for _, b, _ in keys], dtype=int)
    y = np.array([y for _, _, y in keys], dtype=float)
    w = np.array([counts[k] for k in keys], dtype=float)
    return models, i, j, y, w


def has_maximum(n_models: int, i: np.ndarray, j: np.ndarray, y: np.ndarray, w: np.ndarray) -> bool:
    """Whether the likelihood has a finite maximum: iff every model took a point (a win or a tie)
    from every other, directly or through others (Zermelo 1929, Ford 1957). Otherwise shifting the
    models that never lost a point to the rest further up raises it without end."""
    took = np.eye(n_models, dtype=bool)  # took[a, b]: a won or tied against b at least once
    took[i[(w > 0) & (y > 0)], j[(w > 0) & (y > 0)]] = True
    took[j[(w > 0) & (y < 1)], i[(w > 0) & (y < 1)]] = True
    for k in range(n_models):  # Warshall: through others too
        took |= took[:, k, None] & took[None, k, :]
    return bool(took.all())


def _fit(n_models: int, i: np.ndarray, j: np.ndarray, y: np.ndarray, w: np.ndarray, prior: float = 0.0,
         max_iter: int = 100, gtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(θ, H): θ (base-10 log-strengths, Σθ = 0) maximising Σ w·[y·log p + (1−y)·log(1−p)],
    p = σ(ln10·(θ_i − θ_j)), plus `prior` virtual ties of every model against θ = 0; H the Hessian of
    the negative log-likelihood (natural-log units) at θ.

    Without a prior, like FastChat's fit, a model that won every battle has no finite optimum: its
    rating is wherever the iteration stops (bradley_terry gives such fits a prior)."""
    beta = np.zeros(n_models)  # natural-log strengths: p = σ(β_i − β_j)

    def nll(b: np.ndarray) -> float:
        d = b[i] - b[j]
        value = np.sum(w * (np.logaddexp(0, -d) * y + np.logaddexp(0, d) * (1 - y)))
        return float(value + prior * 0.5 * np.sum(np.logaddexp(0, -b) + np.logaddexp(0, b)))

    def gradient_and_hessian(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1 / (1 + np.exp(-(b[i] - b[j])))
        residual = w * (p - y)  # d nll / d(β_i − β_j)
        gradient = np.bincount(i, residual, n_models) - np.bincount(j, residual, n_models)
        curvature = w * p * (1 - p)
        hessian = np.zeros((n_models, n_models))
        np.add.at(hessian, (i, i), curvature)
        np.add.at(hessian, (j, j), curvature)
        np.add.at(hessian, (i, j), -curvature)
        np.add.at(hessian, (j, i), -curvature)
        if prior:
            q = 1 / (1 + np.exp(-b))
            gradient = gradient + prior * (q - 0.5)
            hessian[np.diag_indices(n_models)] += prior * q * (1 - q)
        return gradient, hessian

    current = nll(beta)
    for _ in range(max_iter):
        gradient, hessian = gradient_and_hessian(beta)
        gradient -= gradient.mean()  # along Σβ = 0 (the likelihood's gradient sums to zero; the prior's need not)
        if np.max(np.abs(gradient)) < gtol:
            break
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        step -= step.mean()
        t = 1.0  # backtracking: every step lowers the loss
        while True:
            candidate = beta - t * step
            value = nll(candidate)
            if value <= current:
                break
            t /= 2
            if t < 1e-12:
                candidate = beta
                break
        if candidate is beta:
            break
        beta, current = candidate, value
    beta = beta - beta.mean()
    return beta / LN10, gradient_and_hessian(beta)[1]


def _bounded_fit(n_models: int, i, j, y, w) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(elo, hessian, unbeaten, never_won, prior): the fit, with the prior only where there is no
    maximum; which models won every battle, and which lost every battle (a model with none is both)."""
    prior = 0.0 if has_maximum(n_models, i, j, y, w) else PRIOR_TIES
    theta, hessian = _fit(n_models, i, j, y, w, prior=prior)
    battles = np.bincount(i, w, n_models) + np.bincount(j, w, n_models)
    points = np.bincount(i, w * y, n_models) + np.bincount(j, w * (1 - y), n_models)
    return ELO_BASE + ELO_SCALE * theta, hessian, points == battles, points == 0, prior


def _standard_errors(hessian: np.ndarray) -> np.ndarray:
    """Standard errors of the Elo ratings on the Σθ = 0 subspace, from the negative log-likelihood's
    Hessian in natural-log units (the pseudo-inverse: the constant direction is not a parameter)."""
    centre = np.eye(len(hessian)) - 1 / len(hessian)  # projection onto Σθ = 0 (a prior curves the constant too)
    variance = np.clip(np.diag(np.linalg.pinv(centre @ hessian @ centre, hermitian=True)), 0, None)
    return ELO_SCALE / LN10 * np.sqrt(variance)


def bradley_terry(battles: Iterable[tuple[str, str, float]], *, rounds: int = 100, seed: int = 0) -> list[Rating]:
    """Ratings of the models in `battles`, each (model_a, model_b, outcome) with outcome 1 when a
    won, 0 when b won, 0.5 for a tie. Best first. `rounds` bootstrap refits give the 95% CI (see the
    module's docstring for unbounded ratings and the lower limit on an interval's width)."""
    models, i, j, y, w = _cells(battles)
    if not models:
        return []
    n = len(models)
    elo, hessian, unbeaten, never_won, prior = _bounded_fit(n, i, j, y, w)
    spread = Z95 * _standard_errors(hessian)
    lower, upper = elo - spread, elo + spread
    total = int(w.sum())
    rng = np.random.default_rng(seed)
    low_samples, high_samples = np.empty((rounds, n)), np.empty((rounds, n))
    for r in range(rounds):
        counts = rng.multinomial(total, w / total).astype(float)
        sample, _, unbounded_above, unbounded_below, _ = _bounded_fit(n, i, j, y, counts)
        low_samples[r] = np.where(unbounded_below, -np.inf, sample)
        high_samples[r] = np.where(unbounded_above, np.inf, sample)
    if rounds:
        lower = np.minimum(lower, _percentile(low_samples, 2.5))
        upper = np.maximum(upper, _percentile(high_samples, 97.5))
    lower, upper = np.where(never_won, -np.inf, lower), np.where(unbeaten, np.inf, upper)
    ranks = ci_ranks(lower, upper)
    battles_per_model = np.bincount(i, w, n) + np.bincount(j, w, n)
    ratings = [Rating(m, float(elo[k]), float(lower[k]), float(upper[k]), int(ranks[k]), int(battles_per_model[k]),
                      unbeaten=bool(unbeaten[k]), never_won=bool(never_won[k]), prior=bool(prior))
               for k, m in enumerate(models)]
    return sorted(ratings, key=lambda r: (r.rank, -r.elo, r.model))


def _percentile(samples: np.ndarray, q: float) -> np.ndarray:
    """np.percentile per column (linear interpolation), where samples may be infinite: numpy would
    interpolate between two infinities to nan. Infinite when either neighbour is."""
    below = np.percentile(samples, q, axis=0, method="lower")
    above = np.percentile(samples, q, axis=0, method="higher")
    linear = np.percentile(np.clip(samples, -1e300, 1e300), q, axis=0)  # exact where both neighbours are finite
    return np.where(np.isinf(below), below, np.where(np.isinf(above), above, linear))


def ci_ranks(lower: Sequence[float], upper: Sequence[float]) -> list[int]:
    """rank_i = 1 + how many models are better beyond doubt (their lower bound above i's upper)."""
    return [1 + sum(lo > upper[k] for lo in lower) for k in range(len(upper))]


def win_rates(battles: Iterable[tuple[str, str, float]]) -> tuple[list[str], list[list[float | None]], list[list[int]]]:
    """(models, rate, n): rate[r][c] is the share of r's battles against c that r won (ties as half),
    None where they never met; n[r][c] how many battles."""
    won: Counter = Counter()
    met: Counter = Counter()
    for a, b, y in battles:
        won[a, b] += y
        won[b, a] += 1 - y
        met[a, b] += 1
        met[b, a] += 1
    models = sorted({m for pair in met for m in pair})
    rate = [[won[r, c] / met[r, c] if met[r, c] else None for c in models] for r in models]
    n = [[met[r, c] for c in models] for r in models]
    return models, rate, n


def pairwise(labels_by_rater: dict[Hashable, dict[Hashable, Hashable]]) -> list[tuple[Hashable, Hashable, int, float | None]]:
    """Cohen's κ of every pair of raters on the units both rated: (rater, rater, units, κ)."""
    result = []
    for first, second in combinations(sorted(labels_by_rater, key=str), 2):
        shared = sorted(set(labels_by_rater[first]) & set(labels_by_rater[second]), key=str)
        kappa = cohen_kappa([labels_by_rater[first][u] for u in shared], [labels_by_rater[second][u] for u in shared])
        result.append((first, second, len(shared), kappa))
    return result
