"""The statistical tests behind verdicts (mirage.stats.evidence), held to known truths and to their level."""

import numpy as np
import pytest

from mirage.stats.evidence import (
    apparent_emergence,
    break_test,
    exact_match_transform_test,
    output_lag_test,
    power_law_break_test,
)


def _power_law_curves(rng, G, K, sd, decades=3.0, alpha=-0.4):
    x = np.geomspace(1e7, 1e7 * 10**decades, K)
    loss = 2.0 * (x / x[0]) ** alpha
    noisy = loss[None, :] * np.exp(rng.normal(0, sd, size=(G, K)))
    var = (sd * noisy) ** 2
    return np.broadcast_to(x, (G, K)), noisy, var


@pytest.mark.parametrize("K", [4, 8, 16])
def test_break_test_keeps_its_level_under_a_smooth_power_law(K):
    # the null exactly: a power law with known noise; false alarms must stay at or below the level
    # whatever the number of models (Bonferroni over the positions searched)
    rng = np.random.default_rng(K)
    x, loss, var = _power_law_curves(rng, 4000, K, sd=0.03)
    bt = power_law_break_test(x, loss, var, tolerance=0.0, irreducible=False)
    for level in (0.01, 0.05):
        assert np.mean(bt.break_p < level) <= level * 1.3 + 0.003, (K, level)
    assert np.mean(bt.alpha) == pytest.approx(-0.4, abs=0.01)


def test_break_test_finds_a_step_and_a_kink_where_they_are():
    x = np.geomspace(1e7, 1e10, 8)
    loss = 2.0 * (x / x[0]) ** -0.4
    step = loss * np.where(np.arange(8) >= 5, 0.4, 1.0)  # the loss drops at model 5
    bt = power_law_break_test(x, step, (0.01 * step) ** 2, tolerance=0.02)
    assert bt.break_p[0] < 1e-6 and bt.break_kind[0] == "step" and bt.break_index[0] == 5
    flat_then_falling = np.where(np.arange(8) < 4, 2.0, 2.0 * (x / x[3]) ** -0.8)
    bt = power_law_break_test(x, flat_then_falling, (0.01 * flat_then_falling) ** 2, tolerance=0.02)
    assert bt.break_p[0] < 1e-6 and bt.break_kind[0] == "kink" and bt.break_index[0] == 4


def test_irreducible_loss_is_smooth_and_cannot_absorb_a_threshold():
    x = np.geomspace(1e7, 1e11, 10)
    levelling_off = 0.8 + 3.0 * (x / x[0]) ** -0.5  # Chinchilla-style: approaches E = 0.8
    var = (0.01 * levelling_off) ** 2
    pure = power_law_break_test(x, levelling_off, var, tolerance=0.01, irreducible=False)
    with_e = power_law_break_test(x, levelling_off, var, tolerance=0.01, irreducible=True)
    assert pure.break_p[0] < 0.01  # a pure power law cannot follow it ...
    assert with_e.break_p[0] > 0.5 and with_e.irreducible[0] == pytest.approx(0.8, rel=0.15)  # ... the law with E can
    threshold = np.where(np.arange(10) < 5, 3.0, 3.0 * (x / x[4]) ** -0.7)
    bt = power_law_break_test(x, threshold, (0.01 * threshold) ** 2, tolerance=0.02, irreducible=True)
    assert bt.break_p[0] < 1e-6


def test_break_test_direction_and_masks():
    x = np.tile(np.arange(6.0), (2, 1))
    y = np.array([[0, 1, 2, 3, 8, 9.0], [0, 1, 2, 3, 8, 9.0]])
    up = break_test(x, y, np.full((2, 6), 0.01), direction=+1)
    down = break_test(x, y, np.full((2, 6), 0.01), direction=-1)
    # the step up is the best upward break; looking only downwards finds a weaker kink after it
    assert up.break_p[0] < 1e-6 and up.break_kind[0] == "step" and up.break_index[0] == 4
    assert up.break_z[0] > 0 > down.break_z[0] and abs(up.break_z[0]) > abs(down.break_z[0])
    masked = break_test(
        x, y, np.full((2, 6), 0.01), mask=np.array([[True] * 6, [True] * 3 + [False] * 3]), direction=+1, min_models=4
    )
    assert np.isnan(masked.break_p[1]) and masked.n_models[1] == 3


def test_apparent_emergence_is_the_same_for_4_or_16_models_sampling_one_curve():
    def curve(K):
        x = np.geomspace(1e8, 1e11, K)
        p = np.exp(-((x / 2e9) ** -0.5))
        y = p**5
        half = 0.02
        return x, y, np.clip(y - half, 0, 1), np.clip(y + half, 0, 1)

    a4 = apparent_emergence(*curve(4))
    a16 = apparent_emergence(*curve(16))
    assert a4.apparent[0] and a16.apparent[0]
    assert a4.flat_share[0] == pytest.approx(a16.flat_share[0], abs=0.1)


@pytest.mark.parametrize(
    "values,reason",
    [
        (np.linspace(0.0, 0.7, 8), "no_flat_start"),  # a straight rise from zero
        (0.7 - 0.5 * np.exp(-np.arange(8.0)), "no_flat_start"),  # saturating from a high start
        (np.array([0.0, 0.0, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05]), "small_effect"),
    ],
)
def test_apparent_emergence_rejects_what_does_not_look_emergent(values, reason):
    x = np.geomspace(1e7, 1e10, 8)
    ae = apparent_emergence(x, values, values - 0.01, values + 0.01)
    assert not ae.apparent[0] and ae.reason[0] == reason


def test_apparent_emergence_needs_intervals_and_resolution():
    x = np.geomspace(1e7, 1e10, 6)
    y = np.array([0, 0, 0, 0.05, 0.5, 0.8])
    assert apparent_emergence(x, y, np.full(6, np.nan), np.full(6, np.nan)).reason[0] == "no_intervals"
    wide = apparent_emergence(x, y, y - 0.5, y + 0.5)
    assert wide.reason[0] == "not_resolved"
    ok = apparent_emergence(x, y, y - 0.02, y + 0.02)
    assert ok.apparent[0] and ok.at_floor[0] != ok.at_floor[0]  # no floor given: NaN
    with_floor = apparent_emergence(x, y, np.clip(y - 0.02, 0, 1), y + 0.02, floor=0.0)
    assert with_floor.at_floor[0] == 1.0


def _em_items(rng, ce, L=5, n=2000, threshold=None):
    correct, logprob = [], []
    for c in ce:
        lp = np.full(n, -L * c)
        p = np.exp(lp)
        if threshold is not None and np.exp(-c) < threshold:
            p = np.zeros(n)  # outputs never right below the threshold
        correct.append((rng.random(n) < p).astype(float))
        logprob.append(lp)
    return correct, logprob


def test_exact_match_transform_passes_the_paper_model_and_fails_a_threshold():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e8, 1e11, 6)
    ce = (x / 2e9) ** -0.5
    fit = power_law_break_test(x, ce, np.zeros(6), tolerance=0.01)
    correct, lp = _em_items(rng, ce)
    ok = exact_match_transform_test(correct, lp, fit.fitted[0], fit.fitted_var[0], ce)
    assert ok.p_value > 0.01 and ok.factor == pytest.approx(1.0, abs=0.05)
    correct, lp = _em_items(rng, ce, threshold=0.7)
    bad = exact_match_transform_test(correct, lp, fit.fitted[0], fit.fitted_var[0], ce)
    assert bad.p_value < 1e-6 and bad.worst_z < 0


def test_output_lag_only_counts_outputs_worse_than_their_probabilities():
    rng = np.random.default_rng(1)
    expected = [np.full(500, 0.6)] * 3
    follow = [(rng.random(500) < 0.6).astype(float) for _ in range(3)]
    better = [(rng.random(500) < 0.9).astype(float) for _ in range(3)]  # greedy beats sampling: fine
    stuck = [(rng.random(500) < 0.1).astype(float) for _ in range(3)]
    assert output_lag_test(follow, expected).p_value > 0.01
    assert output_lag_test(better, expected).p_value > 0.5
    lag = output_lag_test(stuck, expected)
    assert lag.p_value < 1e-6 and lag.worst_gap == pytest.approx(0.5, abs=0.05)
