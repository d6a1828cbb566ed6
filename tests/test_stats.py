import math

import numpy as np
import pytest
from scipy.stats import binomtest

from mirage.stats import bootstrap_mean_ci, emergence_score, fit_loglog, jump_sharpness, wilson_interval


def manual_emergence(x, y):
    order = np.argsort(x)
    y = np.asarray(y, float)[order]
    sign = np.sign(np.argmax(y) - np.argmin(y))
    return sign * (y.max() - y.min()) / math.sqrt(np.median(np.diff(y) ** 2))


@pytest.mark.parametrize("seed", range(5))
def test_emergence_score_matches_formula_on_random_curves(seed):
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.geomspace(1e6, 1e11, 8))  # unsorted input must be sorted by scale
    y = rng.random(8)
    es = emergence_score(x, y)
    assert es.score == pytest.approx(manual_emergence(x, y), rel=1e-12)
    assert not es.flat_then_jump and es.n_models == 8


def test_straight_line_over_eight_models_scores_seven():
    assert emergence_score(np.arange(1, 9), np.arange(8)).score == pytest.approx(7.0)


def test_flat_then_jump_is_signed_infinity_with_flag():
    up = emergence_score([1, 2, 3, 4, 5], [0, 0, 0, 0, 0.9])
    assert up.score == math.inf and up.flat_then_jump
    down = emergence_score([1, 2, 3, 4, 5], [0.9, 0, 0, 0, 0])
    assert down.score == -math.inf and down.flat_then_jump


def test_constant_curve_scores_zero_and_short_curve_is_insufficient():
    assert emergence_score([1, 2, 3], [0.3, 0.3, 0.3]).score == 0.0
    short = emergence_score([1, 2], [0.1, 0.9])
    assert short.insufficient and short.n_models == 2


def test_emergence_rejects_nan():
    with pytest.raises(ValueError):
        emergence_score([1, 2, 3], [0.1, float("nan"), 0.3])


@pytest.mark.parametrize("k,n", [(0, 50), (3, 50), (25, 50), (50, 50), (1, 1000)])
def test_wilson_matches_scipy(k, n):
    lo, hi = wilson_interval(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert lo == pytest.approx(ref.low, abs=1e-9)
    assert hi == pytest.approx(ref.high, abs=1e-9)


def test_wilson_is_not_degenerate_at_zero():
    lo, hi = wilson_interval(0, 200)
    assert lo == 0.0 and 0.01 < hi < 0.03


def test_bootstrap_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(5.0, 1.0, size=(400, 3))
    values[:50, 2] = np.nan  # a series lacking some items
    a = bootstrap_mean_ci(values, n_boot=500, seed=3)
    b = bootstrap_mean_ci(values, n_boot=500, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    means = np.nanmean(values, axis=0)
    assert np.all(a[0] < means) and np.all(means < a[1])
    # width close to the normal-theory interval 2 * 1.96 * sd / sqrt(n)
    n = np.sum(np.isfinite(values), axis=0)
    expected = 2 * 1.96 * np.nanstd(values, axis=0) / np.sqrt(n)
    np.testing.assert_allclose(a[1] - a[0], expected, rtol=0.2)


def test_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(7)
    hits = 0
    trials = 200
    data = rng.exponential(1.0, size=(150, trials))  # true mean 1, skewed
    lo, hi = bootstrap_mean_ci(data, n_boot=400, seed=11)
    hits = np.sum((lo <= 1.0) & (1.0 <= hi))
    assert 0.88 * trials <= hits <= 0.99 * trials


def test_jump_sharpness_separates_line_and_step():
    x = np.geomspace(1e7, 1e11, 8)
    line = jump_sharpness(x, np.linspace(0, 1, 8))
    step = jump_sharpness(x, [0, 0, 0, 0.01, 0.9, 0.92, 0.93, 0.95])
    assert line.jump_share == pytest.approx(1 / 7)
    assert step.jump_share > 0.9 and step.jump_index == 4 and step.is_sharp(0.5)
    assert not line.is_sharp(0.5)


def test_jump_not_resolved_when_intervals_overlap():
    x = [1, 2, 3, 4]
    y = [0.1, 0.12, 0.5, 0.52]
    sharp = jump_sharpness(x, y, ci_low=np.subtract(y, 0.05), ci_high=np.add(y, 0.05))
    noisy = jump_sharpness(x, y, ci_low=np.subtract(y, 0.3), ci_high=np.add(y, 0.3))
    assert sharp.resolved and sharp.is_sharp()
    assert not noisy.resolved and not noisy.is_sharp()


def test_fit_loglog_recovers_power_law():
    x = np.geomspace(1e7, 1e12, 9)
    fit = fit_loglog(x, 3.0 * x**-0.07)
    assert fit.slope == pytest.approx(-0.07, abs=1e-10)
    np.testing.assert_allclose(fit.predict(x), 3.0 * x**-0.07, rtol=1e-9)


def test_samples_needed_against_simulation():
    from mirage.stats import samples_needed

    # chance 0: n gives >= one success with probability 0.8
    n = int(samples_needed(0.01))
    assert 1 - 0.99**n >= 0.8 > 1 - 0.99 ** (n - 1)
    assert samples_needed(0.0) == np.inf and samples_needed(0.2, chance=0.25) == np.inf
    # chance 0.25: simulate the one-sided Wilson test at the computed n; power should be ~0.8
    rate, chance = 0.32, 0.25
    n = int(samples_needed(rate, chance))
    rng = np.random.default_rng(0)
    k = rng.binomial(n, rate, size=4000)
    lo, _ = wilson_interval(k, n, level=0.90)  # the 95% one-sided lower bound
    assert 0.72 < np.mean(lo > chance) < 0.88


def test_emergence_score_of_huge_finite_values_does_not_overflow():
    # values near the float64 limit are legitimate input; the score is scale-free, so it equals the
    # score of the same curve divided by 1e300
    import warnings

    x = np.geomspace(1e7, 1e10, 4)
    y = np.array([1.7e308, 1e308, 1e300, 1e200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = emergence_score(x, y)
    assert huge.score == pytest.approx(emergence_score(x, y / 1e300).score)
    assert np.isfinite(huge.score)


def test_one_blas_thread_holds_while_any_thread_is_inside() -> None:
    # the limit is process-wide: a context left on one thread must not lift it for another
    # thread still inside its own (the record path computes intervals on two threads at once)
    import threading

    from mirage.stats.intervals import _blas, one_blas_thread

    def blas_threads() -> list[int]:
        return [int(i["num_threads"]) for i in _blas().info() if i["user_api"] == "blas"]

    before = blas_threads()
    inside, leave = threading.Event(), threading.Event()
    seen: list[list[int]] = []

    def worker() -> None:
        with one_blas_thread():
            inside.set()
            leave.wait(10)
            seen.append(blas_threads())  # after the calling thread left its own context

    def started() -> threading.Thread:
        inside.clear()
        leave.clear()
        thread = threading.Thread(target=worker)
        thread.start()
        assert inside.wait(10)
        return thread

    try:
        with one_blas_thread():
            thread = started()
        leave.set()
        thread.join(10)
        assert seen and all(n == 1 for n in seen[0])
    finally:
        _blas().limit(limits=max(before), user_api="blas")  # OpenBLAS ignores a raise from a worker
    # the record path's pattern: the calling thread's context around its workers' restores
    with one_blas_thread():
        thread = started()
        leave.set()
        thread.join(10)
    assert blas_threads() == before


def test_bootstrap_counts_are_each_resamples_bincount() -> None:
    # the counts come from a sparse matrix's dense form: each row must be the bincount of that
    # resample's draws (the generator's stream, block by block, as drawn)
    from mirage.stats.intervals import bootstrap_counts

    for n_items, n_boot, chunk in [(1, 4, None), (5, 9, 4), (300, 50, None)]:
        rng, again = np.random.default_rng(3), np.random.default_rng(3)
        blocks = list(bootstrap_counts(n_items, n_boot, rng, chunk))
        assert sum(len(b) for b in blocks) == n_boot
        for block in blocks:
            idx = again.integers(0, n_items, size=(len(block), n_items), dtype=np.int32)
            assert block.dtype == np.float32
            np.testing.assert_array_equal(block, [np.bincount(row, minlength=n_items) for row in idx])
