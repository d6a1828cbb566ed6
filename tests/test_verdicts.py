"""Verdicts held to known truths (mirage.synthetic) and to the real tables shipped with mirage.

The reduced grid here is the same code as ``benchmarks/verdict_grid.py`` on fewer families; the
full grid's confusion matrix is in docs/verdicts.md.
"""

import numpy as np
import pandas as pd
import pytest

from mirage import AnalysisSettings, run_analysis
from mirage.analysis.curves import curves_from_records
from mirage.analysis.verdicts import verdicts_table
from mirage.errors import MirageInputError
from mirage.io.bundled import bundled_path
from mirage.io.inputs import read_inputs
from mirage.schema.settings import VerdictSettings
from mirage.schema.vocab import Verdict
from mirage.synthetic import EXPECTED_VERDICT, TruthSpec, grid_specs, known_truth_records


def verdict_row(spec: TruthSpec, **settings) -> pd.Series:
    curves, samples = curves_from_records(known_truth_records(spec), AnalysisSettings(bootstrap=0))
    v, _ = verdicts_table(curves, samples, VerdictSettings(**settings))
    metric = "multiple_choice_grade" if spec.truth.endswith("_mc") else "exact_match"
    return v[v["discontinuous_metric"] == metric].iloc[0]


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    specs = grid_specs(n_models=(4, 8, 16), decades=(2, 4), n_samples=(200, 1000), repeats=1, seed=11)
    rows = []
    for spec in specs:
        r = verdict_row(spec)
        rows.append(
            dict(
                truth=spec.truth,
                n_models=spec.n_models,
                verdict=r["verdict"],
                apparent=bool(r["apparent_emergence"]),
                reason=r["reason"],
            )
        )
    return pd.DataFrame(rows)


def _share(grid, truth, verdict, emergent_only=True):
    sel = grid[(grid.truth == truth) & (grid.apparent if emergent_only else True)]
    assert len(sel) >= 4, f"too few {truth} families look emergent to judge: {len(sel)}"
    return float((sel.verdict == verdict).mean()), sel


@pytest.mark.parametrize(
    "truth,verdict,aim",
    [
        ("smooth", Verdict.EXPLAINED, 0.90),
        ("smooth_mc", Verdict.EXPLAINED, 0.85),
        ("jump", Verdict.NOT_EXPLAINED, 0.95),
        ("threshold", Verdict.NOT_EXPLAINED, 0.85),
        ("threshold_mc", Verdict.NOT_EXPLAINED, 0.85),
    ],
)
def test_reduced_grid_recovers_each_truth(grid, truth, verdict, aim):
    share, sel = _share(grid, truth, verdict)
    assert share >= aim, f"{truth}: {share:.2f} called {verdict!r}\n{sel[sel.verdict != verdict].to_string()}"


def test_reduced_grid_never_calls_a_jump_explained_nor_a_smooth_curve_emergent(grid):
    jumps = grid[grid.truth == "jump"]
    assert not (jumps.verdict == Verdict.EXPLAINED).any()
    flat = grid[grid.truth == "no_emergence"]
    assert len(flat) and (flat.verdict == Verdict.NONE).all(), flat.to_string()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_papers_figure_2_models_are_explained_by_the_metric(seed):
    spec = TruthSpec(
        "smooth",
        scales_given=(3.5e8, 1.3e9, 6.7e9, 2.0e11),
        c=2.0e9,
        alpha=-0.5,
        lengths=(5,),
        n_samples=1000,
        seed=seed,
    )
    row = verdict_row(spec)
    assert row["verdict"] == Verdict.EXPLAINED, row["reason"]
    assert row["loss_alpha"] == pytest.approx(-0.5, abs=0.03)


def test_the_same_law_gets_the_same_verdict_with_4_or_16_models():
    for truth, want in (("smooth", Verdict.EXPLAINED), ("jump", Verdict.NOT_EXPLAINED)):
        got = {
            k: verdict_row(TruthSpec(truth, n_models=k, decades=4, lengths=(6,), top_p=0.93, n_samples=1000, seed=k))[
                "verdict"
            ]
            for k in (4, 6, 12, 16)
        }
        assert set(got.values()) == {want}, (truth, got)


@pytest.mark.parametrize("truth", ["smooth", "jump", "threshold", "smooth_mc", "threshold_mc"])
def test_verdicts_do_not_flip_with_the_seed_on_clear_truths(truth):
    spec = dict(n_models=8, decades=4, lengths=(5,), n_samples=1000)
    if truth.endswith("_mc"):
        spec["top_p"] = 0.7
    got = [verdict_row(TruthSpec(truth, seed=s, **spec))["verdict"] for s in range(5)]
    assert got == [EXPECTED_VERDICT[truth]] * 5, got


def test_every_verdict_row_carries_the_numbers_it_was_decided_on():
    row = verdict_row(TruthSpec("smooth", n_models=8, decades=4, lengths=(5,), n_samples=500, seed=3))
    for col in (
        "rise",
        "flat_share",
        "loss_alpha",
        "loss_alpha_se",
        "break_p_value",
        "transform_p_value",
        "transform_worst_z",
        "lag_p_value",
    ):
        assert np.isfinite(row[col]), col
    assert "smooth power law" in row["reason"] and "alpha" in row["reason"]


# ----------------------------------------------------------------------------- real tables


@pytest.fixture(scope="module")
def bundled():
    return run_analysis(
        read_inputs([bundled_path("pythia_scaling.csv"), bundled_path("opt_bloom_scaling.csv")]),
        AnalysisSettings(bootstrap=0),
    )


def test_lambada_accuracy_against_perplexity_is_no_apparent_emergence(bundled):
    v = bundled.verdicts
    lam = v[(v.task == "lambada_openai") & (v.discontinuous_metric == "acc")]
    assert set(lam.family) >= {"Pythia", "Pythia-deduped", "OPT", "BLOOM"}
    assert (lam.verdict == Verdict.NONE).all(), lam[["family", "shots", "verdict", "reason"]].to_string()
    assert (lam.continuous_metric == "ppl").all()


def test_crows_pairs_zigzags_are_not_called_explained(bundled):
    v = bundled.verdicts
    crows = v[v.task.str.startswith("crows_pairs")]
    assert len(crows) >= 10 and not (crows.verdict == Verdict.EXPLAINED).any()


def _table(rows, **extra):
    frame = pd.DataFrame(rows)
    for k, val in extra.items():
        frame[k] = val
    return frame


def _emergent_table(stderr=None, n_samples=None):
    params = [1e7, 1e8, 1e9, 1e10, 1e11]
    acc = [0.0, 0.0, 0.02, 0.4, 0.8]
    ppl = [40.0, 20.0, 10.0, 5.0, 2.5]
    rows = []
    for p, a, q in zip(params, acc, ppl):
        rows.append(
            dict(
                family="f",
                model=f"m{p:g}",
                params=p,
                task="t",
                metric="exact_match",
                value=a,
                **({} if stderr is None else {"stderr": stderr}),
                **({} if n_samples is None else {"n_samples": n_samples}),
            )
        )
        rows.append(dict(family="f", model=f"m{p:g}", params=p, task="t", metric="ppl", value=q))
    return pd.DataFrame(rows)


def test_a_curve_without_intervals_is_insufficient_evidence(tmp_path):
    path = tmp_path / "scores.csv"
    _emergent_table().to_csv(path, index=False)
    result = run_analysis(read_inputs([path]), AnalysisSettings(bootstrap=0))
    row = result.verdicts.iloc[0]
    assert row["verdict"] == Verdict.INSUFFICIENT and "no intervals" in row["reason"]


def test_a_zero_stderr_at_zero_is_not_a_zero_width_interval(tmp_path):
    path = tmp_path / "scores.csv"
    _emergent_table(stderr=0.0).to_csv(path, index=False)
    result = run_analysis(read_inputs([path]), AnalysisSettings(bootstrap=0))
    em = result.curves[result.curves.metric == "exact_match"]
    assert em["ci_method"].eq("none").all()  # stderr 0 is no interval ...
    assert result.verdicts.iloc[0]["verdict"] == Verdict.INSUFFICIENT
    _emergent_table(stderr=0.0, n_samples=1000).to_csv(path, index=False)
    result = run_analysis(read_inputs([path]), AnalysisSettings(bootstrap=0))
    em = result.curves[result.curves.metric == "exact_match"].sort_values("scale")
    assert (em["ci_method"] == "wilson").all()  # ... n_samples gives the honest one
    assert em["ci_low"].iloc[0] == 0.0 and em["ci_high"].iloc[0] == pytest.approx(0.0038, abs=5e-4)
    assert result.verdicts.iloc[0]["verdict"] in (Verdict.EXPLAINED, Verdict.NOT_EXPLAINED)


def test_curve_by_tells_per_operand_rows_apart(tmp_path):
    a = _emergent_table(n_samples=500).assign(first_operand=1)
    b = _emergent_table(n_samples=500).assign(first_operand=2)
    path = tmp_path / "scores.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    with pytest.raises(MirageInputError, match="--curve-by"):
        read_inputs([path])
    inputs = read_inputs([path], curve_by=["first_operand"])
    result = run_analysis(inputs, AnalysisSettings(bootstrap=0, curve_by=("first_operand",)))
    assert sorted(result.verdicts["first_operand"]) == [1, 2]
    assert set(result.emergence["first_operand"]) == {1, 2}


def test_training_checkpoints_are_one_curve_per_model(tmp_path):
    rows = []
    for model, shift in (("pythia-70m", 1.0), ("pythia-160m", 0.8)):
        for step in (1000, 4000, 16000, 64000, 143000):
            for shots in (0, 5):
                rows.append(
                    dict(
                        family="Pythia",
                        model=model,
                        params=7e7 / shift,
                        step=step,
                        shots=shots,
                        task="lambada",
                        metric="ppl",
                        value=shift * 200 * (step / 1000) ** -0.4,
                        stderr=0.5,
                    )
                )
    path = tmp_path / "training.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    inputs = read_inputs([path], scale="step", filters=["shots=0"])
    assert any("one curve per model" in n for n in inputs.notes)
    result = run_analysis(inputs, AnalysisSettings(bootstrap=0))
    assert sorted(result.emergence["family"]) == ["Pythia/pythia-160m", "Pythia/pythia-70m"]
    assert (result.emergence["n_models"] == 5).all()


def test_settings_are_validated_and_name_the_setting():
    for bad, name in (
        (dict(min_models=0), "min_models"),
        (dict(bootstrap=-5), "bootstrap"),
        (dict(level=1.5), "level"),
        (dict(min_effect=0), "min_effect"),
        (dict(seed=-1), "seed"),
    ):
        with pytest.raises(MirageInputError, match=name):
            AnalysisSettings(**bad)
