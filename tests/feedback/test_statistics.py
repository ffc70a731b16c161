"""Agreement and Bradley–Terry against published values and hand-computable cases, and the fit
against an independent algorithm (Hunter's 2004 minorisation–maximisation for Bradley–Terry)."""

import math

import numpy as np
import pytest

from lab.feedback.statistics import (
    PRIOR_TIES,
    bradley_terry,
    ci_ranks,
    cohen_kappa,
    krippendorff_alpha_nominal,
    win_rates,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing
# values: 4 observers × 12 units; nominal α = 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_it_matches_krippendorffs_published_nominal_alpha():
    units = list(zip(*KRIPPENDORFF_2011, strict=True))

    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_it_gives_alpha_one_for_perfect_agreement_and_none_when_undefined():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b", "b"], ["a", None]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]) is None  # one category: no expected disagreement
    assert krippendorff_alpha_nominal([["a"], ["b", None]]) is None  # nothing pairable


def test_it_matches_a_textbook_cohen_kappa():
    # The two-reader example of Cohen's kappa (Wikipedia, "Cohen's kappa"): 50 proposals,
    # both yes 20, A yes/B no 5, A no/B yes 10, both no 15 → p_o = 0.7, p_e = 0.5, κ = 0.4.
    first = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15

    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None


def test_it_rates_three_wins_to_one_as_400_log10_3_apart():
    battles = [("x", "y", 1.0)] * 3 + [("x", "y", 0.0)]

    ratings = {r.model: r for r in bradley_terry(battles, rounds=0)}

    assert ratings["x"].elo - ratings["y"].elo == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert ratings["x"].elo + ratings["y"].elo == pytest.approx(2000)  # centred on 1000


def test_it_counts_a_tie_as_half_a_win_each():
    only_ties = [("x", "y", 0.5)] * 4 + [("y", "z", 0.5)] * 2

    ratings = bradley_terry(only_ties, rounds=20)
    assert [r.elo for r in ratings] == pytest.approx([1000.0] * 3)
    assert [r.rank for r in ratings] == [1, 1, 1]
    # 2 wins + 2 ties for x (3 of 4 points) is the same fit as 3 wins to 1.
    with_ties = {r.model: r.elo for r in bradley_terry([("x", "y", 1.0)] * 2 + [("x", "y", 0.5)] * 2, rounds=0)}
    assert with_ties["x"] - with_ties["y"] == pytest.approx(400 * math.log10(3), abs=1e-3)


def _hunter_mm(models, battles, iterations=5000):
    """Hunter (2004) MM updates γ_i ← W_i / Σ_j n_ij/(γ_i+γ_j), ties as half wins each way."""
    index = {m: k for k, m in enumerate(models)}
    wins = np.zeros((len(models), len(models)))
    for a, b, y in battles:
        wins[index[a], index[b]] += y
        wins[index[b], index[a]] += 1 - y
    games = wins + wins.T
    gamma = np.ones(len(models))
    for _ in range(iterations):
        gamma = wins.sum(axis=1) / (games / (gamma[:, None] + gamma[None, :])).sum(axis=1)
        gamma /= np.exp(np.log(gamma).mean())
    return {m: 1000 + 400 * math.log10(gamma[index[m]]) for m in models}


def test_it_agrees_with_an_independent_mm_fit_on_a_random_tournament():
    rng = np.random.default_rng(7)
    strengths = {"alpha": 1.2, "beta": 0.4, "gamma": 0.0, "delta": -0.9}
    names = list(strengths)
    battles = []
    for _ in range(600):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + math.exp(-(strengths[a] - strengths[b])))
        u = rng.random()
        battles.append((a, b, 0.5 if abs(u - p) < 0.05 else float(u < p)))

    ours = {r.model: r.elo for r in bradley_terry(battles, rounds=0)}
    reference = _hunter_mm(names, battles)

    for name in names:
        assert ours[name] == pytest.approx(reference[name], abs=0.01)


def test_it_gives_seeded_bootstrap_intervals_around_the_estimate_and_shared_ranks():
    battles = ([("strong", "weak", 1.0)] * 40 + [("strong", "weak", 0.0)] * 10
               + [("strong", "twin", 1.0)] * 40 + [("strong", "twin", 0.0)] * 10
               + [("weak", "twin", 1.0)] * 25 + [("weak", "twin", 0.0)] * 25)

    ratings = bradley_terry(battles, rounds=100, seed=3)
    again = bradley_terry(battles, rounds=100, seed=3)

    assert ratings == again
    by_model = {r.model: r for r in ratings}
    for r in ratings:
        assert r.lower <= r.elo <= r.upper
    assert by_model["strong"].rank == 1
    assert by_model["weak"].rank == by_model["twin"].rank == 2  # their intervals overlap: a shared rank
    assert by_model["strong"].battles == 100


def test_it_ranks_by_intervals_as_chatbot_arena_does():
    # A above B beyond doubt; B and C overlap; C overlaps D; D below A and B.
    lower = [1100, 1000, 960, 900]
    upper = [1200, 1080, 1010, 990]

    assert ci_ranks(lower, upper) == [1, 2, 2, 3]


def test_it_builds_the_empirical_win_rate_matrix():
    models, rate, n = win_rates([("x", "y", 1.0), ("x", "y", 0.5), ("y", "z", 0.0)])

    assert models == ["x", "y", "z"]
    assert rate[0][1] == pytest.approx(0.75) and rate[1][0] == pytest.approx(0.25)
    assert rate[2][1] == 1.0 and rate[0][2] is None
    assert n[0][1] == 2


def test_one_vote_flags_both_models_and_leaves_their_intervals_open():
    ratings = {r.model: r for r in bradley_terry([("A", "B", 1.0)], rounds=100)}
    a, b = ratings["A"], ratings["B"]

    assert (a.unbeaten, a.never_won, b.unbeaten, b.never_won) == (True, False, False, True)
    assert a.upper == math.inf and b.lower == -math.inf
    # The finite sides are not the estimate itself (one vote resamples into itself: the bootstrap
    # alone gave a zero-width interval) and one vote does not rank A above B beyond doubt.
    assert a.lower < a.elo - 200 and b.upper > b.elo + 200
    assert a.rank == b.rank == 1
    # A stated weak prior keeps the estimate finite and modest: FastChat's fit said 2233 and -233.
    assert a.prior and 1050 < a.elo < 1250 and a.elo + b.elo == pytest.approx(2000)


def test_a_single_tie_has_an_interval_of_real_width():
    ratings = bradley_terry([("A", "B", 0.5)], rounds=50)

    assert [r.elo for r in ratings] == pytest.approx([1000.0, 1000.0])
    assert all(r.upper - r.lower > 400 for r in ratings)
    assert not any(r.unbeaten or r.never_won or r.prior for r in ratings)


def test_a_model_never_beaten_among_well_measured_ones_leaves_their_ratings_sane():
    battles = ([("a", "b", 1.0)] * 20 + [("a", "b", 0.0)] * 20 + [("b", "c", 1.0)] * 20 + [("b", "c", 0.0)] * 15
               + [("new", "a", 1.0)])

    ratings = {r.model: r for r in bradley_terry(battles, rounds=100)}

    assert ratings["new"].unbeaten and ratings["new"].upper == math.inf
    assert not any(ratings[m].unbeaten or ratings[m].never_won for m in "abc")
    for m in "abc":  # FastChat's fit put them near 400, the unbeaten one at 2863
        r = ratings[m]
        assert 700 < r.lower < r.elo < r.upper < 1300 and r.upper - r.lower < 400
    assert ratings["a"].elo - ratings["c"].elo == pytest.approx(400 * math.log10(4 / 3), abs=15)


def test_groups_that_never_lost_to_the_rest_are_fitted_with_the_prior_without_flags():
    # a and b beat each other and always beat c and d, which beat each other: no model is unbeaten,
    # yet the likelihood has no maximum (the gap between the groups grows without end).
    battles = [("a", "b", 1.0), ("b", "a", 1.0), ("c", "d", 1.0), ("d", "c", 1.0)] + [("a", "c", 1.0), ("b", "d", 1.0)] * 3

    ratings = {r.model: r for r in bradley_terry(battles, rounds=50)}

    assert all(r.prior for r in ratings.values()) and not any(r.unbeaten or r.never_won for r in ratings.values())
    assert 1000 < ratings["a"].elo < 1400 and 600 < ratings["c"].elo < 1000
    assert ratings["a"].elo == pytest.approx(ratings["b"].elo) and ratings["c"].elo == pytest.approx(ratings["d"].elo)


def test_data_with_a_maximum_is_fitted_without_the_prior():
    battles = [("x", "y", 1.0)] * 3 + [("x", "y", 0.0)] + [("y", "z", 0.5)]

    ratings = {r.model: r for r in bradley_terry(battles, rounds=20)}

    assert not any(r.prior for r in ratings.values())
    assert ratings["x"].elo - ratings["y"].elo == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert ratings["y"].elo == pytest.approx(ratings["z"].elo, abs=1e-3)


def test_the_prior_is_stated_and_weak():
    # One virtual tie of each model against the mean: a single decisive vote between two models
    # moves them apart by the MAP of softplus(-2b) + softplus(b) + softplus(-b), b = 0.75 nats.
    a, b = bradley_terry([("A", "B", 1.0)], rounds=0)
    gap_nats = (a.elo - b.elo) / 400 * math.log(10)

    def derivative(half: float) -> float:
        sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
        return -2 * sig(-2 * half) + sig(half) - sig(-half)

    assert PRIOR_TIES == 1.0 and derivative(gap_nats / 2) == pytest.approx(0, abs=1e-5)
