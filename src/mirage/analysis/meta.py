"""Meta-analysis: where does apparent emergence live across tasks, metrics and families?

Section 4 of Schaeffer et al. for any collection of results. Every (family, task, metric[,
shots]) curve gets the emergence score of Srivastava et al. (2022); the curves that look
emergent are counted per metric and per metric kind, paired with continuous metrics of the same
family and task, and (where per-sample records exist) re-scored with a continuous metric.

**Definitions** (also printed in ``report.html``):

- ``emergence_score``: ``sign(argmax y - argmin y) * (max y - min y) / sqrt(median (y_i - y_{i-1})^2)``
  over the curve's points sorted by scale, on the values as reported (equal to
  :func:`mirage.stats.emergence.emergence_score`). A curve flat at one value and then jumping has a zero
  median step: its score is ``inf`` (with its sign) and ``flat_then_jump`` is true.
- ``relative_score``: the same score computed on the scale where the metric's improvements are
  comparable and oriented so that improvement is positive, divided by ``n_models - 1``.
  Perplexity-like metrics are first mapped to their per-token probability (``1/ppl``,
  ``exp(mean log p)``, ``2**-bits_per_byte``, as ``mirage analyze`` does), because on the raw
  scale a smooth power law in perplexity scores as "sudden" at *small* scale; lower-is-better
  metrics (Brier score, edit distance) are negated. Dividing by ``n_models - 1`` makes a curve
  that improves by equal steps score exactly 1 whatever the number of models.
- A curve is an **apparent emergence** when ``relative_score >= threshold`` (default
  :data:`DEFAULT_THRESHOLD` = 2: the whole improvement is at least twice the typical step of an
  evenly improving curve) *and* it passes the evidence gate of the verdicts
  (:func:`mirage.stats.evidence.apparent_emergence`, on the judged scale): it stays near its smallest
  model's value over part of the log-scale range before rising (a curve that saturates from a
  high start is not an emergence), a bounded metric rises by at least the minimum effect, and the
  rise is resolved by the intervals. A flat-then-jump (``inf``) score whose change is within the
  intervals is not an apparent emergence. Curves without intervals (e.g. BIG-bench score files)
  pass the gate on shape and effect alone and are marked ``evidence = "no intervals"``.
  Curves with fewer than 3 models are not scored.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..errors import MirageInputError
from ..metrics import metric_kind, partners_of, probability_scale
from ..schema.results import Inputs, MetaResult
from ..schema.settings import DEFAULT_THRESHOLD, AnalysisSettings, MetaSettings, VerdictSettings
from ..schema.tables import META_BY_METRIC, META_EMERGENCE, META_PAIRS, META_RESCORE, set_shots
from ..schema.vocab import (
    CONTINUOUS_KINDS,
    SHARP_KINDS,
    ByMetricLevel,
    EvidenceLabel,
    JudgedOn,
    Origin,
)
from ..stats import grouped_emergence_scores
from ..stats.evidence import apparent_emergence
from .curves import combine_curves, curves_from_scores
from .stream import analyse_records

CURVE_KEY = ["family", "task", "shots", "metric"]
REQUIRED_CURVE_COLUMNS = ("family", "model", "scale", "task", "metric", "metric_kind", "value")
EMERGENCE_COLUMNS = list(META_EMERGENCE.names)


def _check_curves(curves: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))}", "curves")
    if curves.empty:
        raise MirageInputError("no curve points", "curves")
    frame = curves.copy()
    set_shots(frame)
    for col in ("value", "scale"):
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            row = frame[bad].iloc[0]
            raise MirageInputError(
                f"{int(bad.sum())} non-finite {col!r} value(s), first in {row['family']} / {row['task']} / "
                f"{row['metric']} / {row['model']}",
                "curves",
            )
        frame[col] = v
    if "higher_is_better" not in frame.columns:
        known = {m: metric_kind(m) for m in frame["metric"].unique()}
        frame["higher_is_better"] = frame["metric"].map(lambda m: (known[m] or ("", True))[1])
    dup = frame.duplicated(CURVE_KEY + ["model"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise MirageInputError(
            f"model {row['model']!r} appears twice in curve {row['family']} / {row['task']} / {row['metric']}", "curves"
        )
    return frame


def judged_values(curves: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values on the judged scale, higher-is-better on it, whether a transform was applied)."""
    values = curves["value"].to_numpy(dtype=float).copy()
    higher = curves["higher_is_better"].astype(bool).to_numpy().copy()
    moved = np.zeros(len(values), dtype=bool)
    continuous = curves["metric_kind"].isin(CONTINUOUS_KINDS).to_numpy()
    metric = curves["metric"].to_numpy()
    for name in pd.unique(metric[continuous]):
        rows = continuous & (metric == name)
        mapped = probability_scale(name, values[rows])
        if mapped is not values[rows] and not np.array_equal(mapped, values[rows]):
            if not np.all(np.isfinite(mapped)):
                continue  # e.g. a negative perplexity: leave it on its own scale
            values[rows] = mapped
            higher[rows] = True  # 1/ppl, exp(log p), 2**-bpb all rise as the model improves
            moved[rows] = True
    return values, higher, moved


def _evidence_gate(
    frame: pd.DataFrame, gid: np.ndarray, judged: np.ndarray, higher: np.ndarray, settings: VerdictSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(passes shape and effect, evidence label, flat share, rise) per group, on the judged scale."""
    order = np.lexsort((frame["scale"].to_numpy(float), gid))
    g = gid[order]
    counts = np.bincount(g)
    G, K = len(counts), int(counts.max()) if len(counts) else 0
    pos = np.arange(len(g)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[g]

    def padded(values: np.ndarray) -> np.ndarray:
        out = np.full((G, K), np.nan)
        out[g, pos] = values[order]
        return out

    x = padded(frame["scale"].to_numpy(float))
    y = padded(judged)
    raw = frame["value"].to_numpy(float)
    lo, hi = frame["ci_low"].to_numpy(float), frame["ci_high"].to_numpy(float)
    # the judged scale is a monotone map of the value: move the interval ends along with it
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = ~np.isclose(judged, raw, equal_nan=True)
        ratio_lo = np.where(moved, np.nan, lo)
        ratio_hi = np.where(moved, np.nan, hi)
    for name in pd.unique(frame["metric"].to_numpy()[moved]):
        rows = moved & (frame["metric"].to_numpy() == name)
        a, b = probability_scale(name, lo[rows]), probability_scale(name, hi[rows])
        ratio_lo[rows], ratio_hi[rows] = np.minimum(a, b), np.maximum(a, b)
    lo_p, hi_p = padded(ratio_lo), padded(ratio_hi)
    head_higher = np.zeros(G, dtype=bool)
    head_higher[g] = higher[order]
    sharp = np.zeros(G, dtype=bool)
    sharp[g] = frame["metric_kind"].isin(SHARP_KINDS).to_numpy()[order]
    # discontinuous and nonlinear metrics are proportions (0-1, or percentages): they have a minimum
    # effect, as in the verdicts; continuous metrics have no common unit and only need a resolved rise
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.where(np.isfinite(y), np.abs(y), np.nan), axis=1)
    effect = np.where(sharp, np.where(top > 1.5, 100 * settings.min_effect, settings.min_effect), 0.0)
    ae = apparent_emergence(
        x,
        y,
        lo_p,
        hi_p,
        np.isfinite(y),
        higher_is_better=head_higher,
        min_effect=effect,
        floor_band=settings.floor_band,
        min_flat_share=settings.min_flat_share,
        min_models=3,
    )
    evidence = np.where(
        ~ae.has_intervals,
        EvidenceLabel.NO_INTERVALS.value,
        np.where(ae.rise_resolved, EvidenceLabel.RESOLVED.value, EvidenceLabel.NOT_RESOLVED.value),
    )
    shape_ok = (ae.flat_share >= settings.min_flat_share) & (ae.rise >= effect) & (ae.rise > 0)
    return shape_ok, evidence.astype(object), ae.flat_share, ae.rise


def curve_emergence(
    curves: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, settings: VerdictSettings | None = None
) -> pd.DataFrame:
    """One row per curve: emergence score, relative score, evidence, apparent emergence; strongest first.

    ``settings``: the :class:`mirage.verdicts.VerdictSettings` whose evidence gate applies
    (defaults); curves without ``ci_low``/``ci_high`` have no intervals.
    """
    settings = settings or VerdictSettings()
    frame = _check_curves(curves)
    for col in ("ci_low", "ci_high"):
        if col not in frame.columns:
            frame[col] = np.nan
    grouped = frame.groupby(CURVE_KEY, sort=True, dropna=False)
    gid = grouped.ngroup().to_numpy()
    raw = grouped_emergence_scores(gid, frame["scale"], frame["value"])
    judged, higher, moved = judged_values(frame)
    judged_scores = raw if not moved.any() else grouped_emergence_scores(gid, frame["scale"], judged)
    first_idx = pd.Series(np.arange(len(frame))).groupby(gid).first().to_numpy()
    by_scale = frame.assign(_g=gid).sort_values(["_g", "scale"], kind="stable")
    value_first = by_scale.groupby("_g", sort=True)["value"].first().to_numpy()
    value_last = by_scale.groupby("_g", sort=True)["value"].last().to_numpy()
    scale_min = by_scale.groupby("_g", sort=True)["scale"].min().to_numpy()
    scale_max = by_scale.groupby("_g", sort=True)["scale"].max().to_numpy()
    head = frame.iloc[first_idx]
    orient = np.where(higher[first_idx], 1.0, -1.0)
    n = raw.n_models.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = orient * judged_scores.score / np.where(n > 1, n - 1, np.nan)
    shape_ok, evidence, flat_share, rise = _evidence_gate(frame, gid, judged, higher, settings)
    scored_high = np.nan_to_num(relative, nan=-np.inf) >= threshold
    table = pd.DataFrame(
        {
            "family": head["family"].to_numpy(),
            "task": head["task"].to_numpy(),
            "shots": head["shots"].to_numpy(),
            "metric": head["metric"].to_numpy(),
            "metric_kind": head["metric_kind"].to_numpy(),
            "higher_is_better": head["higher_is_better"].astype(bool).to_numpy(),
            "n_models": raw.n_models,
            "emergence_score": raw.score,
            "flat_then_jump": judged_scores.flat_then_jump,
            "judged_on": np.where(moved[first_idx], JudgedOn.PROBABILITY.value, JudgedOn.VALUE.value),
            "relative_score": relative,
            "apparent_emergence": scored_high & shape_ok & (evidence != EvidenceLabel.NOT_RESOLVED.value),
            "evidence": evidence,
            "flat_share": flat_share,
            "rise": rise,
            "insufficient": raw.insufficient,
            "scale_min": scale_min,
            "scale_max": scale_max,
            "value_first": value_first,
            "value_last": value_last,
            "origin": head["origin"].to_numpy() if "origin" in head.columns else Origin.SCORES.value,
        }
    )
    set_shots(table)
    for extra in ("preferred", "aggregate"):
        if extra in head.columns:
            table[extra] = head[extra].to_numpy()
    # strongest first: +inf (flat then jump upwards) leads, unscored curves last
    table["_key"] = np.nan_to_num(table["relative_score"].to_numpy(dtype=float), nan=-np.inf)
    table = table.sort_values(
        ["_key", "family", "task", "metric", "shots"],
        ascending=[False, True, True, True, True],
        kind="stable",
        na_position="last",
    )
    table = table.drop(columns="_key").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


# ----------------------------------------------------------------------------- tables


def by_metric_table(emergence: pd.DataFrame) -> pd.DataFrame:
    """Share of scored curves that look emergent, per metric and per metric kind.

    ``share_apparent`` = apparent emergences / scored curves of that metric (or kind);
    ``share_of_all_apparent`` = its apparent emergences / all apparent emergences (the
    paper's "two metrics account for > 92 % of claimed emergent abilities"), to be read beside
    ``share_of_curves``, its base rate (its curves / all curves): a kind with 90 % of the curves
    holding 90 % of the apparent emergences is no concentration. ``n_apparent_resolved`` counts
    those whose rise the intervals resolve.
    """
    scored = emergence[~emergence["insufficient"]]
    total = int(scored["apparent_emergence"].sum())
    parts = []
    for level, keys in (
        (ByMetricLevel.METRIC_KIND.value, ["metric_kind"]),
        (ByMetricLevel.METRIC.value, ["metric", "metric_kind"]),
    ):
        if emergence.empty:
            continue
        g = emergence.groupby(keys, sort=True, dropna=False)
        s = scored.groupby(keys, sort=True, dropna=False)
        resolved = scored[scored["apparent_emergence"] & (scored["evidence"] == EvidenceLabel.RESOLVED.value)]
        part = pd.DataFrame(
            {
                "n_curves": g.size(),
                "n_scored": s.size(),
                "n_apparent": s["apparent_emergence"].sum(),
                "n_apparent_resolved": resolved.groupby(keys, sort=True, dropna=False).size(),
                "n_flat_then_jump": s["flat_then_jump"].sum(),
                "median_relative_score": s["relative_score"].median(),
            }
        ).reset_index()
        part["n_scored"] = part["n_scored"].fillna(0).astype(int)
        part["n_apparent"] = part["n_apparent"].fillna(0).astype(int)
        part["n_apparent_resolved"] = part["n_apparent_resolved"].fillna(0).astype(int)
        part["n_flat_then_jump"] = part["n_flat_then_jump"].fillna(0).astype(int)
        part.insert(0, "level", level)
        part.insert(1, "name", part[keys[0]])
        if level == ByMetricLevel.METRIC_KIND.value:
            part = part.drop(columns="metric_kind").assign(metric_kind=part["name"])
        else:
            part = part.drop(columns="metric")
        parts.append(part)
    cols = list(META_BY_METRIC.names)
    if not parts:
        return pd.DataFrame(columns=cols)
    table = pd.concat(parts, ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["share_apparent"] = np.where(
            table["n_scored"] > 0, table["n_apparent"] / table["n_scored"].clip(lower=1), np.nan
        )
        table["share_of_all_apparent"] = table["n_apparent"] / total if total else np.nan
        # the base rate: how much of the collection this metric (or kind) is
        table["share_of_curves"] = table["n_curves"] / max(len(emergence), 1)
    table["_lvl"] = table["level"].map({ByMetricLevel.METRIC_KIND.value: 0, ByMetricLevel.METRIC.value: 1})
    table = table.sort_values(["_lvl", "n_apparent", "name"], ascending=[True, False, True], kind="stable")
    return table[cols].reset_index(drop=True)


def pairs_table(emergence: pd.DataFrame) -> pd.DataFrame:
    """Each apparently emergent discontinuous/nonlinear curve paired with every continuous curve
    of the same family, task and shots; ``only_under_sharp_metric`` marks pairs where the
    continuous metric of the same outputs does not look emergent."""
    scored = emergence[~emergence["insufficient"]]
    key = ["family", "task", "shots"]
    sharp = scored[scored["metric_kind"].isin(SHARP_KINDS) & scored["apparent_emergence"]]
    cont = scored[scored["metric_kind"].isin(CONTINUOUS_KINDS)]
    left = sharp[
        key + ["metric", "metric_kind", "n_models", "emergence_score", "relative_score", "flat_then_jump", "origin"]
    ]
    right = cont[key + ["metric", "n_models", "emergence_score", "relative_score", "apparent_emergence"]]
    pairs = left.merge(right, on=key, suffixes=("_sharp", "_continuous"))
    pairs = pairs.rename(
        columns={
            "metric_sharp": "sharp_metric",
            "metric_kind": "sharp_kind",
            "metric_continuous": "continuous_metric",
            "apparent_emergence": "continuous_apparent",
        }
    )
    pairs["only_under_sharp_metric"] = ~pairs["continuous_apparent"].astype(bool)
    cols = list(META_PAIRS.names)
    pairs = pairs.reindex(columns=cols)
    set_shots(pairs)
    return pairs.sort_values(
        ["family", "task", "shots", "sharp_metric", "continuous_metric"], kind="stable"
    ).reset_index(drop=True)


def rescore_table(emergence: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The paper's LaMDA experiment on the user's records: each apparent emergence of a curve
    computed from per-sample records, re-scored with one continuous metric of the same samples
    (Brier score for multiple choice; token edit distance, else target log-probability, for
    generation). ``remains_emergent`` says whether the re-scored curve still looks emergent."""
    cols = list(META_RESCORE.names)
    rec = pairs[pairs["origin"] == Origin.RECORDS.value]
    if rec.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (fam, task, shots, metric), g in rec.groupby(
        ["family", "task", "shots", "sharp_metric"], sort=True, dropna=False
    ):
        prefs = partners_of(metric)  # its own partners first, then the defaults
        rank = {m: i for i, m in enumerate(prefs)}
        g = g.assign(_r=[rank.get(m, len(prefs)) for m in g["continuous_metric"]]).sort_values(
            ["_r", "continuous_metric"]
        )
        best = g.iloc[0]
        rows.append(
            dict(
                family=fam,
                task=task,
                shots=shots,
                metric=metric,
                relative_score=best["relative_score_sharp"],
                rescore_metric=best["continuous_metric"],
                rescore_relative_score=best["relative_score_continuous"],
                remains_emergent=bool(best["continuous_apparent"]),
            )
        )
    table = pd.DataFrame(rows, columns=cols)
    set_shots(table)
    return table


def meta_analysis(curves: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> MetaResult:
    """Emergence of every curve, shares per metric and kind, pairs, and record re-scoring.

    ``curves``: the ``curves.csv`` format of ``mirage analyze`` (``family, model, scale, task,
    metric, metric_kind, value`` [+ ``shots``, ``higher_is_better``, ``origin``]).
    """
    if not np.isfinite(threshold):
        raise MirageInputError(f"must be a finite number, got {threshold}", "--threshold")
    emergence = curve_emergence(curves, threshold)
    by_metric = by_metric_table(emergence)
    pairs = pairs_table(emergence)
    rescore = rescore_table(emergence, pairs)
    scored = emergence[~emergence["insufficient"]]
    apparent = scored[scored["apparent_emergence"]]
    kinds = apparent["metric_kind"].value_counts()
    summary = {
        "threshold": float(threshold),
        "n_curves": int(len(emergence)),
        "n_scored": int(len(scored)),
        "n_insufficient": int(emergence["insufficient"].sum()),
        "n_apparent": int(len(apparent)),
        "n_flat_then_jump": int(scored["flat_then_jump"].sum()),
        "apparent_by_kind": {str(k): int(v) for k, v in kinds.items()},
        "share_apparent_in_discontinuous": float(kinds.get("discontinuous", 0) / len(apparent))
        if len(apparent)
        else None,
        "n_pairs": int(len(pairs)),
        "n_tasks_emergent_only_under_sharp_metric": int(
            pairs.loc[pairs["only_under_sharp_metric"].astype(bool), ["family", "task", "shots", "sharp_metric"]]
            .drop_duplicates()
            .shape[0]
        )
        if len(pairs)
        else 0,
        "rescored": int(len(rescore)),
        "remaining_after_rescore": int(rescore["remains_emergent"].sum()) if len(rescore) else 0,
        "n_families": int(emergence["family"].nunique()),
        "n_tasks": int(emergence["task"].nunique()),
        "n_metrics": int(emergence["metric"].nunique()),
    }
    return MetaResult(curves, emergence, by_metric, pairs, rescore, summary)


def meta_curves(inputs: Inputs, settings: AnalysisSettings | None = None) -> pd.DataFrame:
    """Curves of the inputs (the one code path of ``mirage analyze``), with ``origin``
    = ``records`` for curves computed from per-sample records, else ``scores``. Records are
    streamed one (family, task) at a time and no sample is kept."""
    settings = settings or AnalysisSettings()
    rec_curves, groups = None, []
    if inputs.records is not None:
        if settings.curve_by:
            raise MirageInputError("applies to score tables; split records with --filter instead", "--curve-by")
        part = analyse_records(inputs.records, settings)
        rec_curves, groups = part.curves, part.groups
    sc_curves = curves_from_scores(inputs.scores, settings)[0] if inputs.scores is not None else None
    curves = combine_curves(rec_curves, sc_curves, settings)
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values")
    curves = curves.copy()
    curves["origin"] = Origin.SCORES.value
    if inputs.records is not None:
        keys = pd.DataFrame(groups, columns=["family", "task", "shots"])
        set_shots(keys)
        hit = curves[["family", "task", "shots"]].merge(
            keys.assign(_rec=True), how="left", on=["family", "task", "shots"]
        )
        curves.loc[hit["_rec"].fillna(False).astype(bool).to_numpy(), "origin"] = Origin.RECORDS.value
    return curves


def run_meta(inputs: Inputs, settings: MetaSettings = MetaSettings()) -> MetaResult:
    """The whole of ``mirage meta`` but writing: curves of the inputs, their emergence, shares,
    pairs and re-scoring. What reading decided (the x axis of BIG-bench results, dropped NaN
    scores, the units of token counts) goes into the summary beside the numbers it shaped."""
    result = meta_analysis(meta_curves(inputs, settings.analysis_settings()), settings.threshold)
    return dataclasses.replace(
        result,
        summary={
            **result.summary,
            "inputs": list(inputs.sources),
            "scale_column": inputs.scale_column,
            "notes": list(inputs.notes),
        },
    )
