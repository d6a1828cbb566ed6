"""mirage meta: vectorised emergence scores, shares per metric, pairs, re-scoring, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.analysis.meta import curve_emergence, meta_analysis, meta_curves
from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.io.bundled import bundled_path
from mirage.io.inputs import read_inputs as read_meta_inputs
from mirage.schema.results import Inputs
from mirage.stats import emergence_score, grouped_emergence_scores
from mirage.synthetic import power_law_p, synthetic_records

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"

BIGBENCH = FIXTURES / "bigbench_results"
# the package bundles the same real tables as shared/data/real, so tests need no ../shared
PYTHIA = bundled_path("pythia_scaling.csv")
OPT_BLOOM = bundled_path("opt_bloom_scaling.csv")


def curve_rows(family, task, metric, kind, values, higher=True, scales=None):
    scales = scales if scales is not None else np.geomspace(1e7, 1e11, len(values))
    return [
        dict(
            family=family,
            model=f"{family}-{i}",
            scale=float(s),
            task=task,
            metric=metric,
            metric_kind=kind,
            value=float(v),
            higher_is_better=higher,
        )
        for i, (s, v) in enumerate(zip(scales, values))
    ]


# ----------------------------------------------------------------------------- the score itself


def test_vectorised_score_equals_the_per_curve_function_exactly():
    rng = np.random.default_rng(7)
    gids, xs, ys, expected = [], [], [], []
    for g in range(400):
        n = int(rng.integers(1, 10))
        x = (
            rng.choice([1e7, 1e8, 1e9, 1e10, 1e11], size=n)
            if g % 5 == 0
            else rng.permutation(np.geomspace(1e7, 1e11, n))
        )
        kind = g % 4
        if kind == 0:
            y = rng.random(n)
        elif kind == 1:  # flat then a jump, in either direction
            y = np.where(np.arange(n) < n - 1, 0.25, rng.choice([0.0, 0.9]))
        elif kind == 2:  # repeated values: argmax/argmin ties
            y = rng.integers(0, 3, n).astype(float)
        else:
            y = np.full(n, 0.5)
        gids += [g] * n
        xs += list(x)
        ys += list(y)
        expected.append(emergence_score(x, y))
    got = grouped_emergence_scores(np.array(gids), np.array(xs), np.array(ys))
    for g, e in enumerate(expected):
        assert got.insufficient[g] == e.insufficient
        assert got.n_models[g] == e.n_models
        assert got.flat_then_jump[g] == e.flat_then_jump
        if math.isnan(e.score):
            assert math.isnan(got.score[g])
        else:
            assert got.score[g] == e.score  # bit for bit, inf included
    assert np.isinf(got.score).sum() > 10  # the flat-then-jump cases really occurred


def test_flat_at_zero_then_jump_scores_inf_and_is_listed_first():
    rows = (
        curve_rows("A", "steady", "exact_match", "discontinuous", [0.1, 0.2, 0.3, 0.4, 0.5])
        + curve_rows("A", "sudden", "exact_match", "discontinuous", [0, 0, 0, 0, 0.6])
        + curve_rows("A", "steep", "exact_match", "discontinuous", [0, 1, 2, 3, 13])
    )
    em = curve_emergence(pd.DataFrame(rows))
    first = em.iloc[0]
    assert (first["task"], first["rank"]) == ("sudden", 1)
    assert first["emergence_score"] == math.inf and first["flat_then_jump"]
    assert em["task"].tolist() == ["sudden", "steep", "steady"]
    # steep: spread 13 over median step 1, 4 steps -> 13/4; steady: equal steps -> exactly 1
    assert em.set_index("task").loc["steep", "relative_score"] == pytest.approx(13 / 4)
    assert em.set_index("task").loc["steady", "relative_score"] == pytest.approx(1.0)


def test_by_metric_shares_on_constructed_curves():
    even = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = []
    for i in range(3):  # 3 of 4 exact-match curves flat then jump
        rows += curve_rows(f"F{i}", "t", "exact_match", "discontinuous", [0, 0, 0, 0, 0.7])
    rows += curve_rows("F3", "t", "exact_match", "discontinuous", even)
    rows += curve_rows("F0", "u", "multiple_choice_grade", "discontinuous", [0, 1, 2, 3, 13])  # 3.25: emergent
    rows += curve_rows("F1", "u", "multiple_choice_grade", "discontinuous", even)
    for i in range(3):  # Brier score falling in equal steps: improvement, relative score 1
        rows += curve_rows(f"F{i}", "v", "brier_score", "linear", even[::-1], higher=False)
    rows += curve_rows("F3", "v", "brier_score", "linear", [0.9, 0.9, 0.9, 0.9, 0.1], higher=False)  # flat then drop
    rows += curve_rows("F4", "v", "brier_score", "linear", [0.9, 0.5], higher=False)  # 2 models: not scored
    result = meta_analysis(pd.DataFrame(rows), threshold=2.0)
    bm = result.by_metric.set_index(["level", "name"])
    assert bm.loc[("metric", "exact_match"), "share_apparent"] == 3 / 4
    assert bm.loc[("metric", "multiple_choice_grade"), "share_apparent"] == 1 / 2
    assert bm.loc[("metric", "brier_score"), "share_apparent"] == 1 / 4
    assert bm.loc[("metric", "brier_score"), "n_curves"] == 5
    assert bm.loc[("metric", "brier_score"), "n_scored"] == 4
    assert bm.loc[("metric", "exact_match"), "share_of_all_apparent"] == 3 / 5
    assert bm.loc[("metric_kind", "discontinuous"), "share_apparent"] == 4 / 6
    assert bm.loc[("metric_kind", "discontinuous"), "share_of_all_apparent"] == 4 / 5
    assert bm.loc[("metric_kind", "linear"), "n_apparent"] == 1
    assert result.summary["n_apparent"] == 5 and result.summary["n_insufficient"] == 1
    # a lower threshold scores the evenly improving curves high enough, but the evidence gate
    # still says they rise from the start: no apparent emergence, whatever the threshold
    loose = meta_analysis(pd.DataFrame(rows), threshold=1.0)
    assert loose.by_metric.set_index(["level", "name"]).loc[("metric", "brier_score"), "share_apparent"] == 1 / 4
    even_rows = loose.emergence[(loose.emergence.metric == "brier_score") & (loose.emergence.relative_score >= 1.0)]
    assert (even_rows["flat_share"] < 0.25).sum() == 3
    # the base rate sits beside the share of apparent emergences
    kinds = result.by_metric.set_index(["level", "name"]).loc["metric_kind"]
    assert kinds.loc["linear", "share_of_curves"] == pytest.approx(5 / 11)


def test_the_evidence_gate_refuses_unresolved_jumps_and_high_starts():
    def with_ci(rows, half):
        for r in rows:
            r["ci_low"], r["ci_high"] = r["value"] - half, r["value"] + half
        return rows

    rows = (
        with_ci(curve_rows("A", "noisy", "exact_match", "discontinuous", [0, 0, 0, 0, 0.2]), 0.3)
        + with_ci(curve_rows("A", "clear", "exact_match", "discontinuous", [0, 0, 0, 0, 0.6]), 0.05)
        + with_ci(curve_rows("A", "saturating", "exact_match", "discontinuous", [0.6, 0.9, 0.95, 0.96, 0.97]), 0.01)
        + curve_rows("A", "unknown", "exact_match", "discontinuous", [0, 0, 0, 0, 0.6])
    )
    em = curve_emergence(pd.DataFrame(rows)).set_index("task")
    assert em.loc["noisy", "emergence_score"] == math.inf and em.loc["noisy", "evidence"] == "not resolved"
    assert not em.loc["noisy", "apparent_emergence"]
    assert em.loc["clear", "apparent_emergence"] and em.loc["clear", "evidence"] == "resolved"
    assert not em.loc["saturating", "apparent_emergence"]
    assert em.loc["unknown", "apparent_emergence"] and em.loc["unknown", "evidence"] == "no intervals"


def test_bad_curves_are_input_errors():
    rows = curve_rows("A", "t", "acc", "discontinuous", [0.1, 0.2, 0.3])
    bad = pd.DataFrame(rows)
    bad.loc[1, "value"] = np.nan
    with pytest.raises(MirageInputError, match="non-finite 'value'"):
        meta_analysis(bad)
    with pytest.raises(MirageInputError, match="missing column"):
        meta_analysis(pd.DataFrame(rows).drop(columns="metric_kind"))
    with pytest.raises(MirageInputError, match="--threshold"):
        meta_analysis(pd.DataFrame(rows), threshold=math.nan)


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_meta():
    inputs = read_meta_inputs([PYTHIA, OPT_BLOOM, BIGBENCH])
    return meta_analysis(meta_curves(inputs))


@pytest.mark.parametrize("family", ["Pythia", "Pythia-deduped"])
def test_pythia_lambada_acc_and_ppl_are_monotone_with_finite_scores(real_meta, family):
    c = real_meta.curves
    lam = c[(c["family"] == family) & (c["task"] == "lambada_openai") & (c["shots"] == 0)].sort_values("scale")
    acc = lam[lam["metric"] == "acc"]["value"].to_numpy()
    ppl = lam[lam["metric"] == "ppl"]["value"].to_numpy()
    assert len(acc) == len(ppl) == 8
    assert np.all(np.diff(acc) > 0) and np.all(np.diff(ppl) < 0)
    em = real_meta.emergence
    rows = em[(em["family"] == family) & (em["task"] == "lambada_openai") & (em["shots"] == 0)].set_index("metric")
    for metric, values in (("acc", acc), ("ppl", ppl)):
        assert np.isfinite(rows.loc[metric, "emergence_score"])
        assert not rows.loc[metric, "flat_then_jump"]
        assert (
            rows.loc[metric, "emergence_score"] == emergence_score(lam[lam["metric"] == metric]["scale"], values).score
        )
    # ppl falls, so its raw score is negative; judged as 1/ppl it improves (positive)
    assert rows.loc["ppl", "emergence_score"] < 0 < rows.loc["ppl", "relative_score"]
    assert rows.loc["ppl", "judged_on"] == "per-token probability"


def test_bigbench_fixture_answers(real_meta):
    em = real_meta.emergence
    # constructed: BIG-G multiple-choice grade sits at chance (1/7) then jumps -> inf
    mcg = em[(em["family"] == "BIG-G T=0") & (em["metric"] == "multiple_choice_grade")]
    assert len(mcg) == 4 and (mcg["emergence_score"] == math.inf).all() and mcg["flat_then_jump"].all()
    assert em["rank"].iloc[0] == 1 and em["relative_score"].iloc[0] == math.inf
    # its log-likelihood is L log p, a smooth power law: not emergent, so the pair is flagged
    p = real_meta.pairs
    pair = p[
        (p["family"] == "BIG-G T=0")
        & (p["task"] == "arithmetic:3_digit_addition")
        & (p["sharp_metric"] == "exact_str_match")
        & (p["continuous_metric"] == "log_likelihood")
    ]
    assert len(pair) == 1 and bool(pair["only_under_sharp_metric"].iloc[0])
    assert real_meta.rescore.empty  # score tables only: nothing to re-score


# ----------------------------------------------------------------------------- re-scoring from records


def test_rescoring_records_removes_metric_made_emergence_but_keeps_a_real_jump():
    scales = np.geomspace(1e7, 1e11, 6)
    smooth = synthetic_records(
        power_law_p(scales, c=2e9, alpha=-0.35), n_samples=200, lengths=(8,), family="smooth", task="digits", seed=0
    )
    jump_p = {float(s): (0.05 if s < 1e9 else 0.95) for s in scales}
    jumpy = synthetic_records(jump_p, n_samples=200, lengths=(8,), family="jumpy", task="digits", seed=1)
    import pyarrow as pa

    records = pa.concat_tables([smooth, jumpy])
    result = meta_analysis(meta_curves(Inputs(None, records)))
    rs = result.rescore[result.rescore["metric"] == "exact_match"].set_index("family")
    assert set(rs.index) == {"smooth", "jumpy"}  # both look emergent under exact match
    assert (rs["rescore_metric"] == "token_edit_distance").all()
    assert not rs.loc["smooth", "remains_emergent"]
    assert rs.loc["jumpy", "remains_emergent"]
    assert result.summary["rescored"] >= 2
    assert (result.emergence["origin"] == "records").all()


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_every_output(tmp_path):
    out = tmp_path / "meta"
    res = CliRunner().invoke(
        app, ["meta", str(PYTHIA), str(BIGBENCH), "--out", str(out), "--threshold", "3", "--top", "4", "-q"]
    )
    assert res.exit_code == 0, res.output
    for name in (
        "meta_curves.csv",
        "meta_emergence.csv",
        "meta_by_metric.csv",
        "meta_pairs.csv",
        "meta_rescore.csv",
        "summary.json",
        "report.html",
        "figures/emergence_distribution.png",
        "figures/strongest.png",
    ):
        assert (out / name).is_file(), name
    em = pd.read_csv(out / "meta_emergence.csv")
    assert em["relative_score"].iloc[0] == math.inf  # 'inf' survives the CSV round trip
    # an apparent emergence scores at least the threshold and passes the evidence gate
    assert (~em["apparent_emergence"] | (em["relative_score"] >= 3)).all()
    gate = (em["flat_share"] >= 0.25) & (em["evidence"] != "not resolved")
    assert (em["apparent_emergence"] == ((em["relative_score"] >= 3) & gate & (em["rise"] > 0))).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == 3.0
    assert "data:image/png;base64," in (out / "report.html").read_text()
    curves = pd.read_csv(out / "meta_curves.csv")
    assert {"family", "model", "scale", "task", "metric", "metric_kind", "value"} <= set(curves.columns)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"model": {"model_family": "X"}, "scores": []}', "model is missing"),
        ("{not json", "malformed JSON"),
    ],
)
def test_cli_bad_bigbench_file_exits_2_with_one_line(tmp_path, content, message):
    bad = tmp_path / "scores_bad.json"
    bad.write_text(content)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["meta", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0] and message in lines[0]
    assert not out.exists()
