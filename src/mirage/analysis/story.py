"""The tables of the "three predictions" page of ``mirage demo``: what was measured, prediction
by prediction, from an :class:`~mirage.schema.results.AnalysisResult` of a model family evaluated
on a main task (and its smallest models also on a ten times larger copy of it).

Schaeffer et al. (2023) say an emergent-looking curve can come from the metric, and make three
predictions:

1. **Metric choice**: exact match may look emergent where the per-token loss of the same outputs
   moves smoothly (jump shares and emergence scores as ``mirage analyze`` computes them; the
   section's heading and text follow the verdict of :mod:`mirage.analysis.verdicts`, so a page
   never says "the metric makes the jump" above a verdict that says it does not).
2. **Better statistics**: with ten times the test items the Wilson intervals of the small models
   shrink (by about ``1/sqrt(10)``) and more of them are resolved above zero.
3. **Target length**: at a fixed model exact match falls geometrically with target length
   (``p_hat ** L``) while token edit distance rises linearly (``L (1 - p_hat)``).

:func:`story_tables` is pure; :mod:`mirage.report.story` draws the page and says the key numbers
in one paragraph (:func:`mirage.report.story.story_summary`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..schema.results import AnalysisResult, ForecastResult, StoryTables
from ..schema.vocab import CrossingKind
from ..stats import jump_sharpness, ols_slope, z_value

STORY_METRICS = ("exact_match", "token_edit_distance", "target_mean_logprob")
P1_COLUMNS = [
    "family",
    "task",
    "metric",
    "kind",
    "higher_is_better",
    "n_models",
    "value_first",
    "value_last",
    "jump_share",
    "jump_at_params",
    "emergence_score",
    "verdict_test",
    "verdict_outcome",
    "p_value",
]
VERDICT_COLUMNS = [
    "family",
    "task",
    "verdict",
    "discontinuous_metric",
    "continuous_metric",
    "apparent_emergence",
    "rise",
    "flat_share",
    "loss_alpha",
    "break_p_value",
    "lag_p_value",
    "transform_check",
    "transform_p_value",
    "reason",
]
P2_COLUMNS = [
    "family",
    "model",
    "params",
    "n_standard",
    "exact_match_standard",
    "ci_low_standard",
    "ci_high_standard",
    "above_zero_standard",
    "n_large",
    "exact_match_large",
    "ci_low_large",
    "ci_high_large",
    "above_zero_large",
    "ci_width_ratio",
    "samples_needed",
    "rate_used",
    "resolution_standard",
    "resolution_large",
]
P3_COLUMNS = [
    "family",
    "model",
    "params",
    "length",
    "n_samples",
    "observed_exact_match",
    "exact_match_low",
    "exact_match_high",
    "predicted_exact_match",
    "observed_token_edit_distance",
    "token_edit_distance_low",
    "token_edit_distance_high",
    "predicted_token_edit_distance",
    "p_token_hat",
]
P3_MODEL_COLUMNS = [
    "family",
    "model",
    "params",
    "p_token_hat",
    "source",
    "n_lengths",
    "n_lengths_nonzero_em",
    "log_em_slope_observed",
    "log_em_slope_se",
    "log_em_slope_theory",
    "ted_slope_observed",
    "ted_slope_se",
    "ted_slope_theory",
]


# ----------------------------------------------------------------------------- tables


def _select(frame: pd.DataFrame | None, family: str | None, task: str) -> pd.DataFrame:
    """Rows of one family and task (first shots setting if several); empty when absent."""
    if frame is None or len(frame) == 0 or "task" not in frame.columns:
        return pd.DataFrame()
    sel = frame[frame["task"] == task]
    if family is not None and "family" in sel.columns:
        sel = sel[sel["family"] == family]
    if "shots" in sel.columns and len(sel):
        shots = sel["shots"].astype("Int64")
        keep = shots.isna() if shots.isna().any() else shots == shots.min()
        sel = sel[keep.to_numpy(dtype=bool)]
    return sel.reset_index(drop=True)


def _pick_family(result: AnalysisResult, main_task: str, large_task: str) -> str | None:
    """The family on the main task that also has the large task, then the one with most models."""
    c = result.curves
    main = c[(c["task"] == main_task) & (c["metric"] == "exact_match")]
    if main.empty:
        main = c[c["task"] == main_task]
    if main.empty:
        return None
    with_large = set(c.loc[c["task"] == large_task, "family"])
    counts = main.groupby("family")["model"].nunique()
    ranked = sorted(counts.items(), key=lambda kv: (kv[0] not in with_large, -kv[1], str(kv[0])))
    return str(ranked[0][0])


def story_tables(
    result: AnalysisResult,
    main_task: str = "arithmetic",
    large_task: str = "arithmetic_10x",
    *,
    family: str | None = None,
    length_task: str | None = None,
    forecast: ForecastResult | None = None,
) -> StoryTables:
    """The tables of the three predictions from an analysis result (pure, no I/O).

    ``family`` defaults to the family on ``main_task`` that also has ``large_task``, else the one
    with the most models. ``length_task`` (default: ``main_task``) is the task whose targets of
    several lengths prediction 3 uses, when prediction 1 and 2 use long targets only. Missing pieces (no large task, no by-length table, a metric absent)
    give empty tables, never an exception.

    - ``prediction1``: per metric of :data:`STORY_METRICS`: first/last value (smallest/largest
      model), ``jump_share`` (largest neighbour step / range, descriptive), ``emergence_score``,
      and the verdict's test of that curve (``verdict_test``, ``verdict_outcome``, ``p_value``:
      exact match's apparent emergence; the per-token loss's break test; the outputs' lag test).
    - ``verdict``: the analysis verdict for exact match on the main task.
    - ``prediction2``: per model on the large task: n, exact match, Wilson interval and
      ``above_zero`` (interval low > 0) on both sets, ``ci_width_ratio`` (large / standard width),
      ``samples_needed`` for 80 % power and the rate it used (from ``result.resolution``, main task),
      ``resolution`` = 1/(items x mean target length) of each set.
    - ``prediction3``: ``result.lengths`` rows of the main task; ``prediction3_models``: per model
      the least-squares slope of log exact match on L (lengths with exact match > 0) with its
      delta-method standard error, against ``log p_hat``; and of token edit distance on L (with
      its standard error from the per-length intervals) against ``1 - p_hat``.
    - ``prediction4`` (when ``forecast`` is given, a :class:`~mirage.schema.results.ForecastResult`
      back-tested on the main task): its back-test rows for the family's exact match, and
      ``prediction4_fit``: the forecast's status, law and level crossing.
    """
    level = float(result.settings.level)
    if family is None:
        family = _pick_family(result, main_task, large_task)
    length_task = length_task or main_task

    curves = _select(result.curves, family, main_task)
    if len(curves):
        curves = curves[curves["metric"].isin(STORY_METRICS)].sort_values(["metric", "scale"]).reset_index(drop=True)

    verdicts = _select(result.verdicts, family, main_task)
    if len(verdicts):
        verdicts = verdicts[verdicts["discontinuous_metric"] == "exact_match"]
    verdict = (
        verdicts[VERDICT_COLUMNS].reset_index(drop=True) if len(verdicts) else pd.DataFrame(columns=VERDICT_COLUMNS)
    )
    evidence = _select(getattr(result, "evidence", None), family, main_task)
    if len(evidence):
        evidence = evidence[evidence["discontinuous_metric"] == "exact_match"]

    # prediction 1
    emergence = _select(result.emergence, family, main_task)
    rows = []
    for metric in STORY_METRICS:
        g = curves[curves["metric"] == metric] if len(curves) else pd.DataFrame()
        if g.empty:
            continue
        g = g.sort_values("scale", kind="stable")
        # measured on the scale the figure draws: exp(mean log-prob) is the per-token probability
        shown = np.exp(g["value"].to_numpy(float)) if metric == "target_mean_logprob" else g["value"].to_numpy(float)
        sh = jump_sharpness(g["scale"], shown)
        em = emergence[emergence["metric"] == metric] if len(emergence) else pd.DataFrame()
        score = float(em["emergence_score"].iloc[0]) if len(em) else math.nan
        test, outcome, p = _verdict_test_of(metric, verdict, evidence)
        rows.append(
            dict(
                family=family,
                task=main_task,
                metric=metric,
                kind=str(g["metric_kind"].iloc[0]),
                higher_is_better=bool(g["higher_is_better"].iloc[0]),
                n_models=len(g),
                value_first=float(g["value"].iloc[0]),
                value_last=float(g["value"].iloc[-1]),
                jump_share=float(sh.jump_share),
                jump_at_params=float(g["scale"].iloc[sh.jump_index]) if sh.n_models > 1 else math.nan,
                emergence_score=score,
                verdict_test=test,
                verdict_outcome=outcome,
                p_value=p,
            )
        )
    prediction1 = pd.DataFrame(rows, columns=P1_COLUMNS)

    return StoryTables(
        family=family,
        main_task=main_task,
        large_task=large_task,
        length_task=length_task,
        level=level,
        curves=curves,
        prediction1=prediction1,
        verdict=verdict,
        prediction2=_prediction2(result, family, main_task, large_task),
        prediction3=_prediction3(result, family, length_task),
        prediction3_models=_prediction3_models(result, family, length_task, level),
        models=_models(result, family, main_task),
        prediction4=_prediction4(forecast, family, main_task),
        prediction4_fit=_prediction4_fit(forecast, family, main_task),
        forecast=forecast,
    )


def _prediction4(forecast: ForecastResult | None, family: str | None, main_task: str) -> pd.DataFrame:
    """The forecast's back-test rows for the family's exact match on the main task."""
    if forecast is None:
        return pd.DataFrame()
    bt = _select(forecast.backtests, family, main_task)
    return bt[bt["metric"] == "exact_match"].reset_index(drop=True) if len(bt) else bt


def _prediction4_fit(forecast: ForecastResult | None, family: str | None, main_task: str) -> pd.DataFrame:
    """One row: the forecast's status and law, with its level crossing (from the held-out split)."""
    if forecast is None:
        return pd.DataFrame()
    fits = _select(forecast.fits, family, main_task)
    fits = fits[fits["metric"] == "exact_match"] if len(fits) else fits
    if fits.empty:
        return fits
    cr = _select(forecast.crossings, family, main_task)
    cr = cr[(cr["metric"] == "exact_match") & (cr["crossing"] == CrossingKind.LEVEL.value)] if len(cr) else cr
    row = fits.iloc[[0]].reset_index(drop=True)
    for col in ("level", "scale", "scale_low", "scale_high", "note"):
        row[f"crossing_{col}"] = cr[col].iloc[0] if len(cr) else math.nan
    return row


def _models(result: AnalysisResult, family: str | None, main_task: str) -> pd.DataFrame:
    """The family's models on the main task: parameters and test items (from the exact-match curve)."""
    c = _select(result.curves, family, main_task)
    c = c[c["metric"] == "exact_match"] if len(c) else c
    if not len(c):
        return pd.DataFrame()
    return (
        c[["model", "scale", "n_samples"]]
        .rename(columns={"scale": "params", "n_samples": "test problems"})
        .sort_values("params")
    )


_TEST_LABEL = {
    "apparent_emergence": "looks emergent",
    "loss_break": "per-token loss is a smooth power law",
    "output_lag": "outputs follow the target's probabilities",
}


def _verdict_test_of(metric: str, verdict: pd.DataFrame, evidence: pd.DataFrame) -> tuple[str, str, float]:
    """(the verdict's test of this curve, its outcome, its p-value) from the evidence table."""
    if evidence is None or evidence.empty:
        return "", "", math.nan
    if metric == "exact_match":
        rows = evidence[evidence["test"] == "apparent_emergence"]
    else:
        rows = evidence[(evidence["metric"] == metric) & evidence["test"].isin(["loss_break", "output_lag"])]
        if rows.empty and metric == "token_edit_distance":
            rows = evidence[evidence["test"] == "output_lag"]
    if rows.empty:
        return "", "", math.nan
    r = rows.iloc[0]
    return _TEST_LABEL.get(str(r["test"]), str(r["test"])), str(r["outcome"]), float(r["p_value"])


def _prediction2(result: AnalysisResult, family: str | None, main_task: str, large_task: str) -> pd.DataFrame:
    large = _select(result.curves, family, large_task)
    std = _select(result.curves, family, main_task)
    if large.empty or std.empty:
        return pd.DataFrame(columns=P2_COLUMNS)
    large = large[large["metric"] == "exact_match"]
    std = std[std["metric"] == "exact_match"]
    if large.empty or std.empty:
        return pd.DataFrame(columns=P2_COLUMNS)
    cols = ["model", "n_samples", "value", "ci_low", "ci_high"]
    table = large[["family", "model", "scale"] + cols[1:]].merge(
        std[cols], on="model", how="left", suffixes=("_large", "_standard")
    )
    out = pd.DataFrame(
        {
            "family": table["family"],
            "model": table["model"],
            "params": table["scale"].astype(float),
            "n_standard": table["n_samples_standard"],
            "exact_match_standard": table["value_standard"],
            "ci_low_standard": table["ci_low_standard"],
            "ci_high_standard": table["ci_high_standard"],
            "above_zero_standard": table["ci_low_standard"].astype(float) > 0,
            "n_large": table["n_samples_large"],
            "exact_match_large": table["value_large"],
            "ci_low_large": table["ci_low_large"],
            "ci_high_large": table["ci_high_large"],
            "above_zero_large": table["ci_low_large"].astype(float) > 0,
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ci_width_ratio"] = (out["ci_high_large"] - out["ci_low_large"]).astype(float) / (
            out["ci_high_standard"] - out["ci_low_standard"]
        ).astype(float)
    res_std = _select(result.resolution, family, main_task)
    res_large = _select(result.resolution, family, large_task)
    for frame, suffix in ((res_std, "standard"), (res_large, "large")):
        if len(frame):
            frame = frame[frame["metric"] == "exact_match"].set_index("model")
        keep = frame if len(frame) else pd.DataFrame(columns=["samples_needed", "rate_used", "resolution"])
        out[f"resolution_{suffix}"] = out["model"].map(keep["resolution"]).astype(float)
        if suffix == "standard":
            out["samples_needed"] = out["model"].map(keep["samples_needed"]).astype(float)
            out["rate_used"] = out["model"].map(keep["rate_used"]).astype(float)
    return out[P2_COLUMNS].sort_values("params", kind="stable").reset_index(drop=True)


def _prediction3(result: AnalysisResult, family: str | None, main_task: str) -> pd.DataFrame:
    lengths = _select(result.lengths, family, main_task)
    if lengths.empty:
        return pd.DataFrame(columns=P3_COLUMNS)
    out = lengths.rename(columns={"scale": "params"})
    return out[P3_COLUMNS].sort_values(["params", "model", "length"], kind="stable").reset_index(drop=True)


def _prediction3_models(result: AnalysisResult, family: str | None, main_task: str, level: float) -> pd.DataFrame:
    lengths = _select(result.lengths, family, main_task)
    if lengths.empty:
        return pd.DataFrame(columns=P3_MODEL_COLUMNS)
    z = z_value(level)
    rows = []
    for model, g in lengths.groupby("model", sort=False):
        g = g.sort_values("length")
        L = g["length"].to_numpy(dtype=float)
        em = g["observed_exact_match"].to_numpy(dtype=float)
        n = g["n_samples"].to_numpy(dtype=float)
        ok = np.isfinite(em) & (em > 0)
        # delta method: var(log p_hat) = (1 - p) / (n p) for a binomial proportion p_hat
        with np.errstate(divide="ignore", invalid="ignore"):
            var_log = (1 - em[ok]) / (n[ok] * em[ok])
        # the slope itself is length_analysis' (log_accuracy_slope); here only its standard error
        em_slope = float(g["log_accuracy_slope"].iloc[0])
        em_se = ols_slope(L[ok], np.log(em[ok]), var_log)[1]
        ted = g["observed_token_edit_distance"].to_numpy(dtype=float)
        half = (g["token_edit_distance_high"].to_numpy(dtype=float) - ted) / z
        tok = np.isfinite(ted)
        ted_slope, ted_se = ols_slope(L[tok], ted[tok], np.nan_to_num(half[tok], nan=np.inf) ** 2)
        p_hat = float(g["p_token_hat"].iloc[0])
        rows.append(
            dict(
                family=g["family"].iloc[0] if "family" in g else family,
                model=model,
                params=float(g["scale"].iloc[0]),
                p_token_hat=p_hat,
                source=str(g["source"].iloc[0]) if "source" in g else "",
                n_lengths=int(len(g)),
                n_lengths_nonzero_em=int(ok.sum()),
                log_em_slope_observed=em_slope,
                log_em_slope_se=em_se,
                log_em_slope_theory=float(g["log_p_token_hat"].iloc[0]),
                ted_slope_observed=ted_slope,
                ted_slope_se=ted_se,
                ted_slope_theory=1.0 - p_hat if np.isfinite(p_hat) else math.nan,
            )
        )
    return (
        pd.DataFrame(rows, columns=P3_MODEL_COLUMNS)
        .sort_values(["params", "model"], kind="stable")
        .reset_index(drop=True)
    )
