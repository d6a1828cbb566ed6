import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mirage import AnalysisSettings, Verdict, analyze, run_analysis
from mirage.analysis.curves import collect_curves
from mirage.io.inputs import read_inputs
from mirage.schema.results import Inputs
from mirage.synthetic import power_law_p, synthetic_records

SCALES = np.geomspace(1e7, 1e11, 6)


def verdict_for(records, metric="exact_match", **settings):
    result = run_analysis(Inputs(None, records), AnalysisSettings(bootstrap=200, **settings))
    v = result.verdicts
    return v[v["discontinuous_metric"] == metric].iloc[0], result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smooth_per_token_improvement_is_explained_by_the_metric(seed):
    # the paper's model: CE = (N/c)^alpha, smooth in log N; exact match of 8 tokens looks sudden
    p = power_law_p(SCALES, c=2e9, alpha=-0.35)
    records = synthetic_records(p, n_samples=300, lengths=(8,), seed=seed, family="smooth")
    row, result = verdict_for(records)
    em = result.curves[result.curves.metric == "exact_match"].sort_values("scale")
    assert em["value"].iloc[0] == 0.0  # finite test set: the small model scores exactly 0 ...
    assert em["ci_high"].iloc[0] > 0.0  # ... but its interval says "below ~1%", not "zero ability"
    assert row["verdict"] == Verdict.EXPLAINED, row["reason"]
    assert bool(row["apparent_emergence"]) and row["break_p_value"] >= 0.01
    assert row["loss_alpha"] == pytest.approx(-0.35, abs=0.02)  # the law the records were drawn from
    assert row["transform_check"] == "passed"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_jump_in_per_token_probability_is_not_explained(seed):
    p = dict(zip(SCALES, [0.2, 0.21, 0.22, 0.9, 0.92, 0.95]))
    records = synthetic_records(p, n_samples=300, lengths=(8,), seed=seed, family="jumpy")
    row, _ = verdict_for(records)
    assert row["verdict"] == Verdict.NOT_EXPLAINED, row["reason"]
    assert row["break_p_value"] < 1e-6 and row["break_kind"] == "step"
    assert row["break_at_scale"] == pytest.approx(SCALES[3])  # the first model after the jump


def test_smooth_logprob_but_exact_match_switching_on_is_not_explained():
    # log-probabilities improve smoothly, but exact match flips from all-wrong to all-right:
    # exp(-L*CE) of the smooth loss cannot produce that, so the metric does not explain it
    p = power_law_p(SCALES, c=2e9, alpha=-0.35)
    records = synthetic_records(p, n_samples=200, lengths=(4,), seed=0, family="switch")
    frame = records.to_pandas()
    big = frame["scale"] >= SCALES[3]
    frame["output"] = np.where(big, frame["target"], "x")
    frame["output_tokens"] = [list(t) if b else ["x"] for t, b in zip(frame["target_tokens"], big)]
    row, _ = verdict_for(pa.Table.from_pandas(frame, preserve_index=False))
    assert row["break_p_value"] >= 0.01  # the loss itself is smooth ...
    assert row["lag_p_value"] < 1e-6  # ... but the outputs do not follow the model's probabilities
    assert row["transform_check"] == "failed"
    assert row["verdict"] == Verdict.NOT_EXPLAINED, row["reason"]


def test_no_apparent_emergence_for_single_token_targets():
    # L = 1: exact match ~ p itself, as smooth as the log-probability
    p = dict(zip(SCALES, np.linspace(0.3, 0.8, 6)))
    records = synthetic_records(p, n_samples=400, lengths=(1,), seed=0, family="flat")
    row, _ = verdict_for(records)
    assert row["verdict"] == Verdict.NONE, row["reason"]


def test_too_few_models_is_insufficient():
    records = synthetic_records(dict(zip(SCALES[:3], [0.2, 0.6, 0.95])), n_samples=100, lengths=(6,))
    row, result = verdict_for(records)
    assert row["verdict"] == Verdict.INSUFFICIENT
    assert not result.emergence.empty  # 3 models: scored, though no verdict


def test_curves_follow_the_records_exactly():
    records = synthetic_records(dict(zip(SCALES, [0.3, 0.5, 0.6, 0.7, 0.8, 0.9])), n_samples=50, lengths=(3, 5))
    curves, samples, _ = collect_curves(Inputs(None, records), AnalysisSettings(bootstrap=100))
    frame = records.to_pandas()
    for model, g in frame.groupby("model"):
        em = (g["output"] == g["target"]).mean()
        lp = np.mean([np.mean(x) for x in g["target_logprobs"]])
        c = curves[curves.model == model].set_index("metric")
        assert c.loc["exact_match", "value"] == pytest.approx(em)
        assert c.loc["target_mean_logprob", "value"] == pytest.approx(lp)
        assert c.loc["exact_match", "ci_method"] == "wilson"
        assert c.loc["target_mean_logprob", "ci_method"] == "bootstrap"
        assert c.loc["target_mean_logprob", "ci_low"] - 1e-9 <= lp <= c.loc["target_mean_logprob", "ci_high"] + 1e-9
        assert (c["n_samples"] == 50).all()


def test_pythia_lambada_orientation_and_smoothness(pythia_table):
    result = run_analysis(read_inputs([pythia_table], filters=["shots=0"]), AnalysisSettings())
    c = result.curves
    lam = c[(c.family == "Pythia") & (c.task == "lambada_openai")]
    acc = lam[lam.metric == "acc"].sort_values("scale")
    ppl = lam[lam.metric == "ppl"].sort_values("scale")
    assert np.all(np.diff(acc["value"]) > 0) and np.all(np.diff(ppl["value"]) < 0)
    assert acc["value"].iloc[0] == pytest.approx(0.1846, abs=5e-5)
    assert acc["value"].iloc[-1] == pytest.approx(0.7046, abs=5e-5)
    assert (acc["ci_low"] < acc["value"]).all() and (acc["value"] < acc["ci_high"]).all()
    e = result.emergence.set_index(["family", "task", "metric"]).loc[("Pythia", "lambada_openai")]
    assert np.isfinite(e.loc["acc", "emergence_score"]) and e.loc["acc", "emergence_score"] > 0
    assert e.loc["ppl", "emergence_score"] < 0  # falls with scale
    v = result.verdicts
    row = v[(v.family == "Pythia") & (v.task == "lambada_openai") & (v.discontinuous_metric == "acc")].iloc[0]
    assert row["continuous_metric"] == "ppl" and row["verdict"] == Verdict.NONE


@pytest.mark.slow  # two full analyses with 1000 bootstrap draws (~50 s)
def test_output_contract_and_determinism(tmp_path):
    records = synthetic_records(power_law_p(SCALES, alpha=-0.35), n_samples=120, lengths=(6,), seed=3)
    flat = synthetic_records(
        dict(zip(SCALES, [0.01, 0.01, 0.01, 0.01, 0.95, 0.97])),
        n_samples=50,
        lengths=(6,),
        seed=4,
        family="flat",
        task="flat",
    )
    inputs = Inputs(None, pa.concat_tables([records, flat]))
    settings = AnalysisSettings(bootstrap=150, seed=5)
    analyze(inputs, tmp_path / "a", settings, max_figures=3)
    analyze(inputs, tmp_path / "b", settings, max_figures=3)
    for name in ("curves.csv", "emergence.csv", "verdicts.csv", "evidence.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    curves = pd.read_csv(tmp_path / "a" / "curves.csv")
    for col in ("family", "model", "scale", "task", "metric", "metric_kind", "value", "ci_low", "ci_high", "n_samples"):
        assert col in curves.columns
    em = pd.read_csv(tmp_path / "a" / "emergence.csv")
    for col in ("family", "task", "metric", "metric_kind", "n_models", "emergence_score", "flat_then_jump"):
        assert col in em.columns
    assert not em["emergence_score"].isna().any()
    ftj = em[(em.family == "flat") & (em.metric == "exact_match")].iloc[0]
    assert ftj["emergence_score"] == math.inf and bool(ftj["flat_then_jump"])
    assert (tmp_path / "a" / "report.html").stat().st_size > 10_000
    assert len(list((tmp_path / "a" / "figures").glob("*.png"))) == 2
    other = analyze(inputs, tmp_path / "c", AnalysisSettings(bootstrap=150, seed=6), max_figures=0)
    assert not other.curves["ci_low"].equals(pd.read_csv(tmp_path / "a" / "curves.csv")["ci_low"])


def test_failure_leaves_no_half_written_output(tmp_path, monkeypatch):
    from mirage.io import outputs

    records = synthetic_records(dict(zip(SCALES, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8])), n_samples=20)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(outputs, "analysis_report", boom)
    with pytest.raises(RuntimeError):
        analyze(Inputs(None, records), tmp_path / "out", AnalysisSettings(bootstrap=10), max_figures=1)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # 300 samples x 4 lengths with 200 bootstrap draws (~30 s)
def test_exact_match_is_predicted_from_the_continuous_metric(tmp_path):
    smooth = synthetic_records(
        power_law_p(SCALES, alpha=-0.35), n_samples=300, lengths=(2, 4, 6, 8), seed=2, logprob_noise=0.2
    )
    result = analyze(Inputs(None, smooth), tmp_path / "s", AnalysisSettings(bootstrap=200), max_figures=1)
    rows = result.predictions[result.predictions.row_kind == "model"]
    assert len(rows) == 6 and rows["consistent"].astype(bool).mean() >= 5 / 6
    fit = result.prediction_fits.iloc[0]
    assert fit["alpha_low"] <= -0.35 + 0.05 and fit["alpha_high"] >= -0.35 - 0.05
    # target length: at every model, exact match falls with length and edit distance grows
    lengths = pd.read_csv(tmp_path / "s" / "lengths.csv")
    big = lengths[lengths.model == lengths.sort_values("scale")["model"].iloc[-1]].sort_values("length")
    assert np.all(np.diff(big["observed_exact_match"]) < 0)
    assert np.all(np.diff(big["observed_token_edit_distance"]) > 0)
    for name in ("predictions.csv", "prediction_fits.csv", "lengths.csv"):
        assert (tmp_path / "s" / name).exists()
    assert "Exact match predicted from the continuous metric" in (tmp_path / "s" / "report.html").read_text()

    jumpy = synthetic_records(
        dict(zip(SCALES, [0.2, 0.21, 0.22, 0.9, 0.92, 0.95])), n_samples=300, lengths=(8,), seed=2, family="jumpy"
    )
    res = run_analysis(Inputs(None, jumpy), AnalysisSettings(bootstrap=200))
    rows = res.predictions[res.predictions.row_kind == "model"]
    # a smooth power law cannot follow a real jump: several models fall outside the band
    assert (~rows["consistent"].astype(bool)).sum() >= 2


def test_resolution_says_how_many_items_would_show_a_small_model_above_zero():
    p = power_law_p(SCALES, alpha=-0.35)
    records = synthetic_records(p, n_samples=100, lengths=(8,), seed=0)
    result = run_analysis(Inputs(None, records), AnalysisSettings(bootstrap=100))
    res = result.resolution
    em = res[res.metric == "exact_match"].sort_values("scale")
    smallest = em.iloc[0]
    assert smallest["value"] == 0.0 and not smallest["above_chance"]
    assert smallest["rate_source"] == "predicted"
    true_rate = list(p.values())[0] ** 8
    expected = np.ceil(np.log(0.2) / np.log1p(-true_rate))
    assert smallest["samples_needed"] == pytest.approx(expected, rel=0.5)  # from the fitted, not the true, p
    assert smallest["samples_needed"] > 100 and em.iloc[-1]["above_chance"]
    mc = res[res.metric == "multiple_choice_grade"]
    assert (mc["chance"] == 0.25).all()
    assert em["resolution"].iloc[0] == pytest.approx(1 / (100 * 8))
