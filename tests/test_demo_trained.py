"""`mirage demo --quick`: train here, evaluate on held-out problems, analyse, report the three
predictions. The test fails loudly if exact match does not look emergent on the trained family."""

import json
import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.stats import jump_sharpness

runner = CliRunner()


pytestmark = pytest.mark.slow  # trains (once per session), evaluates and analyses a family


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory, quick_family_dir):
    """``mirage demo --quick`` on the family conftest.quick_family_dir trained with the same settings
    (the demo reuses its weights, as it reuses its own after a first run), then evaluate and analyse."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(quick_family_dir, out / "family", ignore=shutil.ignore_patterns(".complete"))
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.stdout


def _curve(out, task, metric):
    c = pd.read_csv(out / "analysis" / "curves.csv")
    return c[(c.task == task) & (c.metric == metric)].sort_values("scale")


def test_demo_ends_with_report_path_and_a_paragraph_of_measurements(quick_demo):
    out, stdout = quick_demo
    lines = stdout.strip().splitlines()
    assert lines[-1] == str(out / "report.html")
    assert lines[-2].startswith("Trained, evaluated and analysed 6 models in ")
    for word in ("Prediction 1", "Prediction 2", "Prediction 3", "Prediction 4", "verdict: "):
        assert word in lines[-2]
    # the verdict in the paragraph is the one the analysis wrote
    v = pd.read_csv(out / "analysis" / "verdicts.csv")
    row = v[(v.task == "arithmetic_long") & (v.discontinuous_metric == "exact_match")].iloc[0]
    assert f"verdict: {row['verdict']}" in lines[-2]


def test_exact_match_looks_emergent_and_sharper_than_edit_distance(quick_demo):
    """The paper's effect, measured on the family trained in this run: if it is not there, this
    fails with the curves in the message rather than passing quietly."""
    out, _ = quick_demo
    em, ted = _curve(out, "arithmetic_long", "exact_match"), _curve(out, "arithmetic_long", "token_edit_distance")
    assert len(em) == 6 and len(ted) == 6
    shown = pd.DataFrame(
        {
            "params": em["scale"].to_numpy(),
            "exact_match": em["value"].to_numpy(),
            "token_edit_distance": ted["value"].to_numpy(),
        }
    ).to_string()
    em_share = jump_sharpness(em["scale"], em["value"]).jump_share
    ted_share = jump_sharpness(ted["scale"], ted["value"]).jump_share
    v = pd.read_csv(out / "analysis" / "verdicts.csv")
    row = v[(v.task == "arithmetic_long") & (v.discontinuous_metric == "exact_match")].iloc[0]
    assert bool(row["apparent_emergence"]), f"exact match does not look emergent on the quick family:\n{shown}"
    assert em_share > ted_share, (
        f"exact match ({em_share:.2f}) is not sharper than edit distance ({ted_share:.2f}):\n{shown}"
    )
    assert em["value"].iloc[-1] > em["value"].iloc[0] and ted["value"].iloc[-1] < ted["value"].iloc[0]


def test_report_has_the_three_predictions_with_figures(quick_demo):
    out, _ = quick_demo
    page = (out / "report.html").read_text()
    for heading in ("Prediction 1", "Prediction 2", "Prediction 3", "Prediction 4"):
        assert heading in page
    # the forecast the page shows is on disk too, and its back-test holds out the larger half
    bt = pd.read_csv(out / "forecast" / "backtests.csv")
    assert len(bt) == 3 and (out / "forecast" / "report.html").exists()
    assert page.count('<figure class="chart"') >= 4  # interactive: the four predictions' charts
    assert 'id="prediction4"' in page and '<figure class="chart"' in (out / "forecast" / "report.html").read_text()
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # plotly.js names urls it never fetches
    assert not re.search(r'(src|href)="https?://', markup)
    assert (out / "analysis" / "report.html").exists()


def test_better_statistics_use_ten_times_the_problems_for_the_small_models(quick_demo):
    out, _ = quick_demo
    std, large = _curve(out, "arithmetic_long", "exact_match"), _curve(out, "arithmetic_long_10x", "exact_match")
    assert len(large) == 3 and list(large["model"]) == list(std["model"].iloc[:3])
    assert (large["n_samples"].to_numpy() == 10 * std["n_samples"].iloc[:3].to_numpy()).all()
    res = pd.read_csv(out / "analysis" / "resolution.csv")
    assert res[res.task == "arithmetic_long"]["samples_needed"].notna().all()


def test_target_lengths_span_several_lengths(quick_demo):
    out, _ = quick_demo
    lengths = pd.read_csv(out / "analysis" / "lengths.csv")
    main = lengths[lengths.task == "arithmetic"]
    assert main["length"].nunique() >= 4
    # exact match falls with length at every model that gets anything right (measured, not assumed)
    big = main[main.model == main.sort_values("scale")["model"].iloc[-1]].sort_values("length")
    assert big["observed_exact_match"].iloc[0] > big["observed_exact_match"].iloc[-1]


def test_only_held_out_problems_are_evaluated(quick_demo):
    out, _ = quick_demo
    heldout = {json.loads(line)["prompt"] for line in (out / "family" / "heldout.jsonl").read_text().splitlines()}
    records = pd.concat(pd.read_parquet(p) for p in (out / "store").rglob("*.parquet") if ".parts" not in p.parts)
    assert set(records["prompt"]) <= heldout


def test_same_seed_same_numbers(quick_demo, tmp_path):
    """Evaluation and analysis again from the same trained weights (training's own determinism is
    tested in test_training): the same curves and the same paragraph numbers."""
    out, stdout = quick_demo
    again = tmp_path / "again"
    shutil.copytree(out / "family", again / "family")
    result = runner.invoke(app, ["demo", "--quick", "--out", str(again)])
    assert result.exit_code == 0, result.output
    a = pd.read_csv(out / "analysis" / "curves.csv")
    b = pd.read_csv(again / "analysis" / "curves.csv")
    pd.testing.assert_frame_equal(a, b)
    strip = lambda text: re.sub(r"in \d+ s", "", text.strip().splitlines()[-2])  # noqa: E731
    assert strip(stdout) == strip(result.stdout)
