"""BIG-bench as it is: scores_*.json and full-log_*.json written with BIG-bench 1.0.0's own
results code (tests/fixtures/bigbench_logs/make_fixtures.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.analysis.meta import meta_analysis, meta_curves
from mirage.cli import app
from mirage.io.inputs import read_inputs as read_meta_inputs
from mirage.metrics import compute_sample_metrics

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bigbench_logs"
RESULTS = FIXTURES / "mirage_choice" / "results"


@pytest.fixture(scope="module")
def inputs():
    return read_meta_inputs([FIXTURES])


def test_only_scores_files_are_score_files_and_full_logs_are_records(inputs):
    sources = {Path(s).name for s in inputs.scores["source"]}
    assert sources and all(s.startswith("scores_") for s in sources)
    rec = inputs.records.to_pandas()
    assert len(rec) == 9 * 2 * 24  # 9 models x 2 subtasks x 24 examples, generation and choice merged
    assert set(rec["task"]) == {"mirage_choice:addition", "mirage_choice:comparison"}
    log = json.loads((RESULTS / "full-log_BIG-G_T=0_1b.json").read_text())
    mc = next(q for q in log["queries"] if q["function"] == "cond_log_prob" and q["task"].endswith("addition"))
    gen = next(q for q in log["queries"] if q["function"] == "generate_text")
    row = rec[(rec["model"] == "1b") & (rec["task"] == "mirage_choice:addition") & (rec["sample_id"] == "3")].iloc[0]
    sample = mc["samples"][3]
    assert list(row["choice_logprobs"]) == sample["absolute_scores"]
    assert row["choices"][row["correct_choice"]] == max(sample["target_values"], key=sample["target_values"].get)
    assert row["output"] == gen["samples"][3]["output"] and row["prompt"] == sample["input"]


def test_records_reproduce_bigbenchs_own_multiple_choice_grade(inputs):
    m = compute_sample_metrics(inputs.records)
    for f in RESULTS.glob("scores_*.json"):
        doc = json.loads(f.read_text())
        for entry in doc["scores"]:
            if ":" not in entry["subtask_description"]:
                continue
            got = m[
                (m["family"] == doc["model"]["model_family"])
                & (m["model"] == doc["model"]["model_name"])
                & (m["task"] == entry["subtask_description"])
            ]
            assert got["multiple_choice_grade"].mean() == pytest.approx(
                entry["score_dict"]["multiple_choice_grade"], abs=1e-12
            )
            if "exact_str_match" in entry["score_dict"]:
                assert got["exact_match"].mean() == pytest.approx(entry["score_dict"]["exact_str_match"], abs=1e-12)


def test_shots_minus_one_is_kept_as_not_applicable(inputs):
    s = inputs.scores
    comp = s[s["task"] == "mirage_choice:comparison"]
    assert len(comp) and comp["shots"].isna().all()
    rec = inputs.records.to_pandas()
    assert rec.loc[rec["task"] == "mirage_choice:comparison", "shots"].isna().all()
    assert (rec.loc[rec["task"] == "mirage_choice:addition", "shots"] == 0).all()


def test_nan_scores_are_dropped_with_a_note(inputs):
    s = inputs.scores
    small = s[(s["family"] == "BIG-G T=0") & (s["model"] == "2m") & (s["metric"] == "macro_f1")]
    assert set(small["task"]) == {"mirage_choice:comparison", "mirage_choice"}  # the NaN ones are gone
    assert any("2 NaN score(s) dropped" in n and "2m" in n for n in inputs.notes)


def test_aggregates_are_the_entries_named_after_the_task(inputs):
    s = inputs.scores
    agg = s[s["aggregate"]]
    assert set(agg["task"]) == {"mirage_choice"}
    # BIG-bench gives an all-multiple-choice task's aggregate multiple_choice_grade as its preferred
    # score, so preferred_score == normalized_aggregate_score would not have found it
    assert agg.loc[agg["preferred"], "metric"].unique().tolist() == ["multiple_choice_grade"]
    assert not s.loc[s["task"] != "mirage_choice", "aggregate"].any()


def test_default_x_axis_is_flop_matched_non_embedding_parameters(inputs):
    s = inputs.scores
    big_g = s[(s["family"] == "BIG-G T=0") & (s["model"] == "128b")]
    assert (big_g["scale"] == 134_228_740_096).all()
    toy = s[s["family"] == "toy-dense"]
    assert (toy["x_axis"] == "non_embedding_params").all() and (toy["scale"] == toy["non_embedding_params"]).all()
    rec = inputs.records.to_pandas()
    scales = rec.groupby(["family", "model"])["scale"].first()
    assert scales[("BIG-G T=0", "128b")] == 134_228_740_096 and scales[("toy-dense", "large")] == 4_800_000_000
    assert any("x axis is flop-matched non-embedding parameters" in n for n in inputs.notes)
    assert any("'toy-dense': x axis is non-embedding parameters" in n for n in inputs.notes)


@pytest.mark.parametrize("scale, expect_128b", [("params", 137_440_272_384), ("non_embedding_params", 134_228_740_096)])
def test_each_parameter_count_can_be_the_x_axis(scale, expect_128b):
    got = read_meta_inputs([FIXTURES], scale=scale)
    s = got.scores
    assert (s[(s["family"] == "BIG-G T=0") & (s["model"] == "128b")]["scale"] == expect_128b).all()
    assert got.scale_column == scale


def test_a_zero_count_under_scale_leaves_those_models_out_with_a_note(tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(
        app, ["meta", str(FIXTURES), "--scale", "flop_matched_non_embedding_params", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert any("toy-dense" in n and "left out" in n for n in summary["notes"])
    curves = pd.read_csv(out / "meta_curves.csv")
    assert set(curves["family"]) == {"BIG-G T=0"}


def test_lamda_style_rescoring_from_bigbenchs_own_logs(tmp_path):
    """The paper's LaMDA experiment on BIG-bench logs: multiple-choice grade of the stand-in
    steps, the Brier score of the same option log-probabilities changes smoothly."""
    res = CliRunner().invoke(app, ["meta", str(FIXTURES), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    rescore = pd.read_csv(tmp_path / "o" / "meta_rescore.csv")
    mcg = rescore[(rescore["family"] == "BIG-G T=0") & (rescore["metric"] == "multiple_choice_grade")]
    assert len(mcg) == 2 and (mcg["rescore_metric"] == "brier_score").all()
    assert (mcg["relative_score"] == np.inf).all() and not mcg["remains_emergent"].any()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("flop-matched" in n for n in summary["notes"])


def test_a_full_log_beside_its_scores_file_is_no_duplicate(tmp_path):
    for name in (
        "scores_BIG-G_T=0_1b.json",
        "full-log_BIG-G_T=0_1b.json",
        "scores_BIG-G_T=0_8b.json",
        "full-log_BIG-G_T=0_8b.json",
    ):
        shutil.copy(RESULTS / name, tmp_path / name)
    got = read_meta_inputs([tmp_path])
    assert got.records.num_rows == 2 * 48 and len(got.scores)
    result = meta_analysis(meta_curves(got))
    assert np.isfinite(result.summary["n_curves"])
