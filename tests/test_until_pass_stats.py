"""The pass rate of sampling until a pass: its exact interval and the prediction it is checked against."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mirage.errors import MirageInputError
from mirage.stats.pass_until import (
    EXACT,
    PASSES_ONLY,
    pass_rate_estimate,
    predicted_pass_rate,
)


def _outcomes(n: int, k: int, p: float) -> dict[tuple[int, int], float]:
    """Every outcome (items passed s, failed attempts of the passing items t) and its probability,
    by direct convolution (independent of the module's FFTs)."""
    q = 1 - (1 - p) ** k
    one = np.array([p * (1 - p) ** j for j in range(k)]) / q
    out = {}
    for s in range(n + 1):
        pmf = np.array([1.0])
        for _ in range(s):
            pmf = np.convolve(pmf, one)
        for t, pt in enumerate(pmf):
            out[(s, t)] = stats.binom.pmf(s, n, q) * pt
    return out


@pytest.mark.parametrize(("n", "k"), [(6, 5), (10, 12), (4, 30)])
def test_coverage_is_at_least_the_level_for_every_rate(n, k):
    """Exact coverage, summed over every outcome of the design, at rates from rare to common
    passes (where T carries most of the information and where S does)."""
    bounds: dict[tuple[int, int], tuple[float, float]] = {}
    worst = 1.0
    for p in np.exp(np.linspace(np.log(3e-3), np.log(0.8), 40)):
        covered = 0.0
        for (s, t), prob in _outcomes(n, k, p).items():
            if (s, t) not in bounds:
                est = pass_rate_estimate(n, s, t, k)
                bounds[(s, t)] = (est.ci_low, est.ci_high)
            low, high = bounds[(s, t)]
            covered += prob if low <= p <= high else 0.0
        worst = min(worst, covered)
    assert worst >= 0.95 - 1e-9


def test_limit_one_is_the_clopper_pearson_interval():
    est = pass_rate_estimate(n_items=40, passed=7, failures_of_passed=0, limit=1)
    low = stats.beta.ppf(0.025, 7, 34)
    high = stats.beta.ppf(0.975, 8, 33)
    assert est.rate == 7 / 40 and est.attempts == 40
    assert est.ci_low == pytest.approx(low, rel=2e-6) and est.ci_high == pytest.approx(high, rel=2e-6)  # found to 1e-6


def test_every_item_passing_far_below_the_limit_is_the_negative_binomial_interval():
    # 50 items, 500 failures in all, a limit no item came near: inverse sampling's exact interval
    est = pass_rate_estimate(n_items=50, passed=50, failures_of_passed=500, limit=10_000)
    assert est.ci_low == pytest.approx(stats.beta.ppf(0.025, 50, 501), rel=1e-5)
    assert est.ci_high == pytest.approx(stats.beta.ppf(0.975, 50, 500), rel=1e-5)


def test_rare_passes_are_resolved_far_below_one_item():
    """The issue's example: nothing right greedily on 2,000 items, a few hundred passes when
    sampled -- a rate of order 1e-4 with an interval a fraction of it wide."""
    est = pass_rate_estimate(n_items=2000, passed=60, failures_of_passed=60 * 50, limit=100)
    assert est.rate == pytest.approx(60 / (60 + 3000 + 1940 * 100))
    assert est.ci_low < est.rate < est.ci_high
    assert 0.2 < (est.ci_high - est.ci_low) / est.rate < 0.6
    none = pass_rate_estimate(n_items=2000, passed=0, failures_of_passed=0, limit=100)
    assert none.ci_low == 0 and none.ci_high == pytest.approx(1 - 0.025 ** (1 / 200_000), rel=1e-9)


def test_the_interval_covers_the_pooled_prediction_when_items_differ():
    """Items with different pass probabilities: the interval of the common-rate model covers
    E[passes] / E[attempts] at least as often as its level (it is conservative there)."""
    rng = np.random.default_rng(3)
    n, k = 40, 64
    pi = np.exp(rng.uniform(np.log(1e-3), np.log(0.3), n))
    _, _, truth = predicted_pass_rate(pi, k)
    covered, runs = 0, 200
    for _ in range(runs):
        failures = rng.geometric(pi) - 1
        passed = failures < k
        est = pass_rate_estimate(n, int(passed.sum()), int(failures[passed].sum()), k)
        covered += est.ci_low <= truth <= est.ci_high
    assert covered / runs >= 0.95


def test_prediction_formula():
    passes, attempts, rate = predicted_pass_rate([0.5, 0.0, 1.0], limit=4)
    assert passes == pytest.approx(1 - 0.5**4 + 0 + 1)
    assert attempts == pytest.approx((1 - 0.5**4) / 0.5 + 4 + 1)
    assert rate == pytest.approx(passes / attempts)
    # tiny probabilities: no cancellation, attempts -> K
    passes, attempts, rate = predicted_pass_rate([1e-12], limit=1000)
    assert passes == pytest.approx(1e-9, rel=1e-6) and attempts == pytest.approx(1000, rel=1e-6)
    assert rate == pytest.approx(1e-12, rel=1e-6)


def test_designs_too_large_for_the_attempts_order_by_passes():
    # 30 % of items pass within 500 attempts (p about 7.1e-4); they then take 235 attempts on average
    est = pass_rate_estimate(n_items=100_000, passed=30_000, failures_of_passed=30_000 * 235, limit=500)
    assert est.method == PASSES_ONLY and est.ci_low < est.rate < est.ci_high
    assert pass_rate_estimate(n_items=50, passed=20, failures_of_passed=100, limit=20).method == EXACT


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, 0, 0, 5), "at least one item"),
        ((10, 11, 0, 5), "inconsistent attempts"),
        ((10, 2, 9, 5), "inconsistent attempts"),  # 2 items can fail at most 4 times each before passing
    ],
)
def test_inconsistent_counts_are_one_clear_error(args, words):
    with pytest.raises(MirageInputError, match=words):
        pass_rate_estimate(*args)


def test_monotone_in_the_evidence():
    """More passes, or fewer failed attempts, never lower the bounds."""
    base = pass_rate_estimate(100, 30, 600, 50)
    more = pass_rate_estimate(100, 31, 600, 50)
    faster = pass_rate_estimate(100, 30, 500, 50)
    for other in (more, faster):
        assert other.ci_low >= base.ci_low and other.ci_high >= base.ci_high
    assert math.isclose(base.level, 0.95)


# ----------------------------------------------------------------------------- in mirage analyze


def _sampled_family(until_pass: int = 50, seed: int = 1):
    from mirage.synthetic import power_law_p, synthetic_records

    scales = np.geomspace(1e6, 1e9, 6)
    return synthetic_records(
        power_law_p(scales, c=3e7, alpha=-0.4), n_samples=80, lengths=(1, 2, 3, 4), seed=seed, until_pass=until_pass
    )


def test_analyze_writes_pass_rates_and_a_nonlinear_curve(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from mirage.cli import app
    from mirage.io.records import write_records

    write_records(_sampled_family(), tmp_path / "records.parquet")
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "records.parquet"), "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    rates = pd.read_csv(tmp_path / "out" / "pass_rates.csv")
    assert len(rates) == 6 and rates["agree"].all()  # the truth: each sample right with probability p ** L
    assert (rates["ci_low"] < rates["pass_rate"]).all() and (rates["pass_rate"] < rates["ci_high"]).all()
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    curve = curves[curves["metric"] == "pass_rate_sampled"]
    assert len(curve) == 6 and set(curve["metric_kind"]) == {"nonlinear"}
    assert set(curve["ci_method"]) == {"until_pass_exact"}
    assert np.allclose(curve.sort_values("scale")["value"], rates.sort_values("scale")["pass_rate"])
    emergence = pd.read_csv(tmp_path / "out" / "emergence.csv")
    assert "pass_rate_sampled" in set(emergence["metric"])
    summary = __import__("json").loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pass_rates"] == {"models": 6, "with_prediction": 6, "prediction_in_interval": 6}


def test_a_wrong_teacher_forced_probability_disagrees():
    """Records whose target_stop_logprob is off by a factor of 3 in probability: the check says so."""
    import pyarrow as pa

    from mirage.analysis.pass_rates import pass_rate_table

    table = _sampled_family(until_pass=200)
    i = table.column_names.index("target_stop_logprob")
    shifted = pa.compute.subtract(table.column(i), pa.scalar(np.log(3.0)))
    rates = pass_rate_table(table.set_column(i, "target_stop_logprob", shifted))
    informative = rates[rates["items_passed"] >= 40]  # below, most items stop at K and say little
    assert len(informative) >= 3 and not informative["agree"].any()


def test_mixed_limits_in_one_curve_are_one_error():
    import pyarrow as pa

    from mirage.analysis.pass_rates import pass_rate_table

    a = _sampled_family(until_pass=50)
    b = _sampled_family(until_pass=60, seed=2)
    b = b.set_column(b.column_names.index("sample_id"), "sample_id", pa.array([f"b{i}" for i in range(b.num_rows)]))
    with pytest.raises(MirageInputError, match="mixes until-pass records of different limits"):
        pass_rate_table(pa.concat_tables([a, b]))
