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
    model: str
    elo: float
    lower: float
    upper: float
    rank: int
    battles: int


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


def _fit(n_models: int, i: np.ndarray, j: np.ndarray, y: np.ndarray, w: np.ndarray,
         max_iter: int = 100, gtol: float = 1e-6) -> np.ndarray:
    """θ (base-10 log-strengths, Σθ = 0) maximising Σ w·[y·log p + (1−y)·log(1−p)], p = σ(ln10·(θ_i − θ_j)).

    Like FastChat's fit it has no regulariser: a model that won every battle has no finite MLE,
    and its rating is wherever the iteration stops (the gradient below `gtol`), far above the rest."""
    beta = np.zeros(n_models)  # natural-log strengths: p = σ(β_i − β_j)

    def nll(b: np.ndarray) -> float:
        d = b[i] - b[j]
        return float(np.sum(w * (np.logaddexp(0, -d) * y + np.logaddexp(0, d) * (1 - y))))

    current = nll(beta)
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(beta[i] - beta[j])))
        residual = w * (p - y)  # d nll / d(β_i − β_j)
        gradient = np.bincount(i, residual, n_models) - np.bincount(j, residual, n_models)
        if np.max(np.abs(gradient)) < gtol:
            break
        curvature = w * p * (1 - p)
        hessian = np.zeros((n_models, n_models))
        np.add.at(hessian, (i, i), curvature)
        np.add.at(hessian, (j, j), curvature)
        np.add.at(hessian, (i, j), -curvature)
        np.add.at(hessian, (j, i), -curvature)
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
                return (beta - beta.mean()) / LN10
        beta, current = candidate, value
    return (beta - beta.mean()) / LN10


def bradley_terry(battles: Iterable[tuple[str, str, float]], *, rounds: int = 100, seed: int = 0) -> list[Rating]:
    """Ratings of the models in `battles`, each (model_a, model_b, outcome) with outcome 1 when a
    won, 0 when b won, 0.5 for a tie. Best first. `rounds` bootstrap refits give the 95% CI."""
    models, i, j, y, w = _cells(battles)
    if not models:
        return []
    theta = _fit(len(models), i, j, y, w)
    elo = ELO_BASE + ELO_SCALE * theta
    total = int(w.sum())
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(models)))
    for r in range(rounds):
        counts = rng.multinomial(total, w / total).astype(float)
        samples[r] = ELO_BASE + ELO_SCALE * _fit(len(models), i, j, y, counts)
    if rounds:
        lower, upper = np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)
    else:
        lower = upper = elo
    ranks = ci_ranks(lower, upper)
    battles_per_model = np.bincount(i, w, len(models)) + np.bincount(j, w, len(models))
    ratings = [Rating(m, float(elo[k]), float(lower[k]), float(upper[k]), int(ranks[k]), int(battles_per_model[k]))
               for k, m in enumerate(models)]
    return sorted(ratings, key=lambda r: (r.rank, -r.elo, r.model))


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
