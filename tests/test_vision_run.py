"""End to end: ``mirage vision --quick`` trains all three families (about a minute on 2 cores).

The central assertion is a measurement on the models trained here: for each experiment the
discontinuous metric fixed in advance (largest K, smallest c) has a higher emergence score
than every continuous metric computed from the same held-out predictions.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.stats import emergence_score
from mirage.vision.experiments import EXPERIMENTS

runner = CliRunner()


pytestmark = pytest.mark.slow  # trains three vision families (once per session: conftest.vision_quick_dir)


@pytest.fixture(scope="module")
def quick_run(vision_quick_dir):
    return vision_quick_dir


def _oriented(curve: pd.DataFrame) -> float:
    score = emergence_score(curve["params"].to_numpy(float), curve["value"].to_numpy(float)).score
    return score if bool(curve["higher_is_better"].iloc[0]) else -score


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_discontinuous_metric_looks_more_emergent_on_the_same_predictions(quick_run, name):
    spec = EXPERIMENTS[name]
    scores = pd.read_csv(quick_run / "scores.csv")
    fam = scores[scores.family == spec.family]
    models = fam.drop_duplicates("model").sort_values("params")
    assert len(models) >= 6 and models["params"].is_unique
    # the same predictions: one row per (model, metric), all models carry every metric
    assert fam.groupby("metric")["model"].nunique().eq(len(models)).all()
    headline = _oriented(fam[fam.metric == spec.headline])
    continuous = {m: _oriented(g) for m, g in fam[fam.metric_kind == "linear"].groupby("metric")}
    assert set(continuous) == ({"mse"} if spec.kind == "autoencoder" else {"accuracy", "cross_entropy"})
    for metric, score in continuous.items():
        assert headline > score, f"{spec.headline} {headline:.3g} <= {metric} {score:.3g}"
    # continuous metrics really do improve with scale (a smooth, not a broken, family)
    for metric, g in fam[fam.metric_kind == "linear"].groupby("metric"):
        g = g.sort_values("params")
        sign = 1 if g["higher_is_better"].iloc[0] else -1
        assert sign * (g["value"].iloc[-1] - g["value"].iloc[0]) > 0, metric


def test_outputs_agree_and_core_reads_scores(quick_run):
    from mirage.io.inputs import read_inputs

    emergence = pd.read_csv(quick_run / "emergence.csv")
    assert list(emergence.columns[:7]) == [
        "family",
        "task",
        "metric",
        "metric_kind",
        "n_models",
        "emergence_score",
        "flat_then_jump",
    ]
    scores = pd.read_csv(quick_run / "scores.csv")
    for row in emergence.itertuples(index=False):
        curve = scores[(scores.family == row.family) & (scores.metric == row.metric)]
        assert row.emergence_score == pytest.approx(emergence_score(curve["params"], curve["value"]).score)
    summary = json.loads((quick_run / "summary.json").read_text())
    assert {c["family"] for c in summary["comparisons"]} == {s.family for s in EXPERIMENTS.values()}
    inputs = read_inputs([str(quick_run / "scores.csv")])
    assert set(inputs.scores["metric_kind"]) == {"linear", "discontinuous"}
    assert inputs.scores["scale"].equals(inputs.scores["params"].astype(float))
    preds = pd.read_parquet(quick_run / "_predictions.parquet")
    acc = scores[(scores.metric == "accuracy") & (scores.family == "vision-cnn")].set_index("model")["value"]
    measured = preds[preds.family == "vision-cnn"].groupby("model")["correct"].mean().astype(float)
    pd.testing.assert_series_equal(measured.reindex(acc.index), acc, check_names=False)
    report = (quick_run / "report.html").read_text()
    assert report.count('<figure class="chart"') == 3 and "the continuous one" in report
    assert sorted(p.name for p in (quick_run / "figures").iterdir()) == [
        "autoencoder.png",
        "cnn.png",
        "transformer.png",
    ]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["vision", "--experiment", "gan", "--out", str(out)])
    assert result.exit_code == 2 and "unknown experiment 'gan'" in result.output
    result = runner.invoke(app, ["vision", "--experiment", "cnn", "--mnist", str(tmp_path / "nope"), "--out", str(out)])
    assert result.exit_code == 2 and "nope: no such directory" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()
