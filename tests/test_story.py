"""The three-predictions page of ``mirage demo`` (mirage.analysis.story, mirage.report.story), on synthetic families whose truth is known.

Families (one record store, one analysis, as the demo does it):

- ``smooth``: 8 models, per-token p rising linearly in log N from 0.05 to 0.995, targets of 1..6
  tokens, 300 items on ``arithmetic``; the 4 smallest also on 3000 items of ``arithmetic_10x``.
  Exact match ~ mean_L p^L is convex in p, so its largest step is a bigger share of its range
  than token edit distance's (~ L(1-p), linear in p: 1/7 per step).
- ``jumpy``: per-token p itself jumps from ~0.03 to ~0.9 between two models (a real jump).
- ``long``: the paper's power law with 8-token targets (exact match sharp, p smooth).
"""

from __future__ import annotations

import dataclasses
import html
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mirage import AnalysisSettings, Inputs, Verdict, run_analysis
from mirage.analysis.story import STORY_METRICS, story_tables
from mirage.io.inputs import read_inputs
from mirage.io.outputs import write_story
from mirage.io.records import write_records
from mirage.report.png import pyplot
from mirage.report.story import (
    HEADINGS,
    prediction1_heading,
    prediction1_text,
    prediction4_text,
    story_figures,
    story_summary,
)
from mirage.synthetic import power_law_p, synthetic_records

SCALES = np.geomspace(1e5, 1e8, 8)
LENGTHS = (1, 2, 3, 4, 5, 6)
N_STANDARD = 300


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("story")
    p_smooth = dict(zip(SCALES, np.linspace(0.05, 0.995, 8)))
    p_jumpy = dict(zip(SCALES, [0.02, 0.025, 0.03, 0.035, 0.9, 0.92, 0.94, 0.96]))
    small = dict(sorted(p_smooth.items())[:4])
    tables = [
        synthetic_records(p_smooth, n_samples=N_STANDARD, lengths=LENGTHS, family="smooth", task="arithmetic", seed=1),
        synthetic_records(
            small, n_samples=10 * N_STANDARD, lengths=LENGTHS, family="smooth", task="arithmetic_10x", seed=2
        ),
        synthetic_records(p_jumpy, n_samples=120, lengths=LENGTHS, family="jumpy", task="arithmetic", seed=3),
        synthetic_records(
            power_law_p(np.geomspace(1e7, 1e11, 6), c=2e9, alpha=-0.35),
            n_samples=200,
            lengths=(8,),
            family="long",
            task="arithmetic",
            seed=4,
        ),
    ]
    write_records(pa.concat_tables(tables), root / "store" / "records.parquet")
    # run_analysis is analyze without writing its directory (same AnalysisResult; 0.7 s instead of 10 s)
    return run_analysis(read_inputs([root / "store"]), AnalysisSettings(seed=0, bootstrap=200))


@pytest.fixture(scope="module")
def smooth(result):
    return story_tables(result, family="smooth")


# ----------------------------------------------------------------------------- prediction 1


def test_prediction1_measures_the_three_metrics_like_the_analysis(result, smooth):
    p1 = smooth.prediction1.set_index("metric")
    assert list(p1.index) == list(STORY_METRICS)
    # the smooth-p family: exact match carries more of its change in one step than edit distance
    assert p1.loc["exact_match", "jump_share"] > p1.loc["token_edit_distance", "jump_share"] + 0.1
    # same numbers as the analysis' own tables (reused, not recomputed differently)
    em = result.emergence[(result.emergence.family == "smooth") & (result.emergence.task == "arithmetic")]
    em = em.set_index("metric")
    for metric in STORY_METRICS:
        assert p1.loc[metric, "jump_share"] == pytest.approx(em.loc[metric, "jump_share"])
        assert p1.loc[metric, "emergence_score"] == pytest.approx(em.loc[metric, "emergence_score"])
    v = result.verdicts.set_index(["family", "task", "discontinuous_metric"]).loc[
        ("smooth", "arithmetic", "exact_match")
    ]
    assert p1.loc["exact_match", "jump_share"] == pytest.approx(v["jump_share_discontinuous"])
    # the page's "looks emergent" is the verdict's first step, read from the evidence table
    looks = p1.loc["exact_match", "verdict_outcome"] == "apparent"
    assert looks == bool(v["apparent_emergence"])
    assert p1.loc["target_mean_logprob", "verdict_test"] == "per-token loss is a smooth power law"
    assert p1.loc["exact_match", "value_first"] < p1.loc["exact_match", "value_last"]


@pytest.fixture(scope="module")
def jumpy_page(result, tmp_path_factory):
    """The page of the family with a real jump, which has no 10x task."""
    page = tmp_path_factory.mktemp("jumpy") / "story.html"
    tables = story_tables(result, family="jumpy")
    write_story(tables, page)
    return tables, page.read_text()


def test_a_real_jump_is_reported_as_not_explained(jumpy_page):
    tables, text = jumpy_page
    assert tables.verdict["verdict"].iloc[0] == Verdict.NOT_EXPLAINED
    assert tables.prediction1.set_index("metric").loc["target_mean_logprob", "verdict_outcome"] == "break"
    assert f"Verdict: {html.escape(tables.verdict['verdict'].iloc[0])}" in text
    assert html.escape(prediction1_text(tables)) in text
    # the heading never claims what the verdict denies
    assert "<h2>Prediction 1: metric choice: the jump is not the metric&#x27;s doing</h2>" in text
    assert "the metric makes the jump" not in text


def test_page_says_what_the_verdict_says(result, smooth, tmp_path):
    long = story_tables(result, family="long")
    assert long.verdict["verdict"].iloc[0] == "explained by metric"  # 8-token targets of a smooth power law
    for tables in (smooth, long):
        verdict = tables.verdict["verdict"].iloc[0]
        text = prediction1_text(tables)
        assert ("Exact match does NOT look emergent" in text) == (verdict == "no apparent emergence")
        assert ("here the metric makes the jump" in text) == (verdict == "explained by metric")
        assert f"Verdict: {verdict} (" in text
        assert f"{tables.prediction1.set_index('metric').loc['exact_match', 'jump_share']:.2f}" in text
        page = tmp_path / f"{tables.family}.html"
        write_story(story_tables(result, family=tables.family), page)
        heading = prediction1_heading(tables)
        assert f"<h2>{html.escape(heading)}</h2>" in page.read_text()


# ----------------------------------------------------------------------------- prediction 2


def test_prediction2_ten_times_the_items_narrows_the_intervals(smooth):
    p2 = smooth.prediction2
    assert list(p2["model"]) == [f"smooth-m{i}" for i in range(4)]
    assert (p2["n_standard"] == N_STANDARD).all() and (p2["n_large"] == 10 * N_STANDARD).all()
    assert (p2["ci_width_ratio"] < 1).all()
    # Wilson width ~ 2z sqrt(p(1-p)/n) once n p is not tiny: ratio 1/sqrt(10) = 0.316. With >= 10 hits
    # in the standard set p_hat is known to ~1/sqrt(10) relative, the width to about half that, so the
    # ratio lies within 0.316 * (1 +- 0.35) at about two standard deviations.
    hits = p2["exact_match_standard"] * p2["n_standard"]
    enough = p2[hits >= 10]
    assert len(enough) >= 2
    assert np.allclose(enough["ci_width_ratio"], 1 / math.sqrt(10), atol=0.11)
    assert (p2["above_zero_standard"] == (p2["ci_low_standard"] > 0)).all()
    assert (p2["above_zero_large"] == (p2["ci_low_large"] > 0)).all()
    assert p2["above_zero_large"].sum() >= p2["above_zero_standard"].sum()
    assert np.isfinite(p2["samples_needed"]).all() and (p2["samples_needed"] >= 1).all()
    # the smaller the model, the more items it needs
    assert p2["samples_needed"].is_monotonic_decreasing


def test_prediction2_summary_counts_agree_with_their_verb(smooth):
    p2 = smooth.prediction2
    for above in (0, 1, 2):
        flags = [i < above for i in range(len(p2))]
        tables = dataclasses.replace(smooth, prediction2=p2.assign(above_zero_standard=flags))
        verb = "is" if above == 1 else "are"
        assert f"of {len(p2)} small models, {above} {verb} above zero with" in story_summary(tables)


def test_missing_large_task_gives_an_empty_table_and_says_not_run(result, jumpy_page):
    tables = story_tables(result, family="smooth", large_task="no_such_task")
    assert tables.prediction2.empty
    assert "Prediction 2: not run" in story_summary(tables)
    jumpy, text = jumpy_page  # the jumpy family has no arithmetic_10x records
    assert jumpy.prediction2.empty
    assert "Not run: the records hold no task &#x27;arithmetic_10x&#x27;" in text
    assert text.count('<figure class="chart"') == 2  # predictions 1 and 3, interactive


def test_missing_lengths_and_resolution_do_not_raise(result, tmp_path):
    bare = dataclasses.replace(result, lengths=None, resolution=None, predictions=None)
    tables = story_tables(bare)
    assert tables.family == "smooth"  # the family that has the large task is the default
    assert tables.prediction3.empty and tables.prediction3_models.empty
    assert tables.prediction2["samples_needed"].isna().all()
    assert "Prediction 3: not measured" in story_summary(tables)
    write_story(tables, tmp_path / "p.html", analysis_link=None)
    text = (tmp_path / "p.html").read_text()
    assert "Not measured: the analysis has no by-length table" in text
    assert text.count('<figure class="chart"') == 2  # predictions 1 and 2, interactive
    write_story(tables, tmp_path / "static.html", analysis_link=None, static=True)
    static = (tmp_path / "static.html").read_text()
    assert static.count('<img src="data:image/png;base64,') == 2 and "<script>" not in static
    assert "href=" not in re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # no link when asked for none
    empty = story_tables(result, main_task="nothing")
    assert empty.prediction1.empty and empty.prediction2.empty and empty.prediction3.empty
    assert story_figures(empty) == {}


# ----------------------------------------------------------------------------- prediction 3


def test_prediction3_slopes_match_the_per_token_probability(smooth):
    m = smooth.prediction3_models
    assert len(m) == 8
    p = np.linspace(0.05, 0.995, 8)
    assert np.allclose(m["p_token_hat"], p)  # noise-free synthetic log-probs
    # exact match: least-squares slope of log EM on L vs log p_hat. Standard error by the delta method
    # (var log EM_hat = (1 - EM)/(n EM), 50 items per length); only models with EM > 0 at every
    # length, so no length was dropped (dropping zeros biases the slope towards 0). 3 SE.
    full = m[m["n_lengths_nonzero_em"] == len(LENGTHS)]
    assert len(full) >= 3
    diff = (full["log_em_slope_observed"] - full["log_em_slope_theory"]).abs()
    assert (diff <= 3 * full["log_em_slope_se"]).all(), full
    # and the slopes really separate the models: the steepest is several SE from the flattest
    assert full["log_em_slope_observed"].iloc[0] < full["log_em_slope_observed"].iloc[-1] - 0.2
    # edit distance: slope on L vs 1 - p_hat. 3 SE from the per-length intervals, plus 10 % because
    # Levenshtein distance can align substitutions more cheaply than Hamming (measured 2-7 % low)
    tol = 3 * m["ted_slope_se"] + 0.1 * m["ted_slope_theory"]
    assert ((m["ted_slope_observed"] - m["ted_slope_theory"]).abs() <= tol).all(), m
    rows = smooth.prediction3
    assert np.allclose(rows["predicted_exact_match"], rows["p_token_hat"] ** rows["length"])
    assert np.allclose(rows["predicted_token_edit_distance"], rows["length"] * (1 - rows["p_token_hat"]))


# ----------------------------------------------------------------------------- the page


def test_write_story_writes_one_self_contained_page_atomically(result, tmp_path):
    plt = pyplot()
    open_before = set(plt.get_fignums())
    family = pd.DataFrame(
        {
            "name": [f"smooth-m{i}" for i in range(8)],
            "params": SCALES.astype(int),
            "train_tokens": 10**6,
            "final_loss": np.linspace(2, 0.1, 8),
            "seconds": 1.0,
        }
    )
    out = tmp_path / "demo"
    tables = story_tables(result)
    write_story(tables, out / "story.html", family_table=family, intro_html="<p>INTRO</p>", title="mirage demo: test")
    assert sorted(p.name for p in out.iterdir()) == ["story.html"]  # no temp file left behind
    assert set(plt.get_fignums()) == open_before  # every figure closed
    text = (out / "story.html").read_text()
    assert f"<h2>{html.escape(prediction1_heading(tables))}</h2>" in text
    for heading in HEADINGS[1:3]:
        assert f"<h2>{heading}</h2>" in text
    assert HEADINGS[3] not in text  # no forecast given: no prediction 4 section
    assert text.count('<figure class="chart"') == 3
    text = re.sub(r"<script>.*?</script>", "", text, flags=re.S)  # plotly.js itself names urls it never fetches
    assert "<p>INTRO</p>" in text and "<th>final_loss</th>" in text and "<th>seconds</th>" not in text
    assert "<th>model</th>" in text and "<td>smooth-m7</td>" in text  # TrainedModel.name is the model
    # no external resources: no http(s) or protocol-relative src/href, no CSS url()/@import
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "url(" not in text and "@import" not in text
    assert 'href="analysis/report.html"' in text
    # the text states measured numbers from the tables
    ratio = tables.prediction2["ci_width_ratio"].median()
    assert f"{ratio:.2f} times as wide" in text
    assert f"{int(tables.prediction2['above_zero_large'].sum())} of 4 on the larger set" in text


def test_story_summary_has_the_key_numbers(smooth):
    text = story_summary(smooth)
    p1 = smooth.prediction1.set_index("metric")
    assert f"exact match {p1.loc['exact_match', 'jump_share']:.2f}" in text
    assert f"token edit distance {p1.loc['token_edit_distance', 'jump_share']:.2f}" in text
    assert smooth.verdict["verdict"].iloc[0] in text
    assert f"with {N_STANDARD} problems" in text and f"with {10 * N_STANDARD}" in text
    assert "Prediction 3: log exact match falls by" in text and "\n" not in text


# ----------------------------------------------------------------------------- prediction 4


def _forecast_of(result_records, family, backtest):
    from mirage import ForecastSettings, Inputs, run_forecast

    return run_forecast(Inputs(None, result_records), ForecastSettings(backtest=backtest, bootstrap=100))


def test_prediction4_forecast_of_the_larger_models_from_the_smaller(tmp_path):
    from mirage.synthetic import TruthSpec, known_truth_records

    # the paper's model: a smooth law forecasts the larger half; a real jump: the back-test misses
    for truth, want in (("smooth", "forecast"), ("jump", None)):
        rec = known_truth_records(
            TruthSpec(
                truth,
                n_models=8,
                decades=4,
                lengths=(5,),
                n_samples=600,
                seed=2,
                top_p=0.93,
                task="arithmetic",
                family=truth,
            )
        )
        res = run_analysis(Inputs(None, rec), AnalysisSettings(bootstrap=0))
        fc = _forecast_of(rec, truth, 4)
        tables = story_tables(res, "arithmetic", "none", family=truth, forecast=fc)
        assert len(tables.prediction4) == 4 and len(tables.prediction4_fit) == 1
        text = prediction4_text(tables)
        covered = int(tables.prediction4["covered"].astype(bool).sum())
        assert f"covers {covered} of 4 held-out models" in text
        if want == "forecast":
            assert tables.prediction4_fit["status"].iloc[0] == "forecast" and covered == 4
            assert "the metric made it predictable" in text
        else:
            assert covered < 4 or tables.prediction4_fit["status"].iloc[0] == "unreliable"
        page = tmp_path / f"{truth}.html"
        write_story(tables, page)
        body = page.read_text()
        assert f"<h2>{HEADINGS[3]}</h2>" in body and 'id="prediction4"' in body  # its interactive chart
        assert body.count('<figure class="chart"') >= 2
        write_story(tables, page, static=True)
        assert page.read_text().count('<img src="data:image/png;base64,') >= 2  # the static page: PNGs
        assert "Prediction 4: forecast from the 4 smaller models" in story_summary(tables)
