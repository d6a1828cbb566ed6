"""Meta-analysis: where does apparent emergence live across tasks, metrics and families?

Section 4 of Schaeffer et al. for any collection of results. Every (family, task, metric[,
shots]) curve gets the emergence score of Srivastava et al. (2022); the curves that look
emergent are counted per metric and per metric kind, paired with continuous metrics of the same
family and task, and (where per-sample records exist) re-scored with a continuous metric.

**Definitions** (also printed in ``report.html``):

- ``emergence_score``: ``sign(argmax y - argmin y) * (max y - min y) / sqrt(median (y_i - y_{i-1})^2)``
  over the curve's points sorted by scale, on the values as reported (equal to
  :func:`mirage.stats.emergence_score`). A curve flat at one value and then jumping has a zero
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
  (:func:`mirage.evidence.apparent_emergence`, on the judged scale): it stays near its smallest
  model's value over part of the log-scale range before rising (a curve that saturates from a
  high start is not an emergence), a bounded metric rises by at least the minimum effect, and the
  rise is resolved by the intervals. A flat-then-jump (``inf``) score whose change is within the
  intervals is not an apparent emergence. Curves without intervals (e.g. BIG-bench score files)
  pass the gate on shape and effect alone and are marked ``evidence = "no intervals"``.
  Curves with fewer than 3 models are not scored.
"""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import MirageInputError
from .metrics import CONTINUOUS_KINDS, SHARP_KINDS, canonical_metric_name, metric_kind

DEFAULT_THRESHOLD = 2.0
CURVE_KEY = ["family", "task", "shots", "metric"]
REQUIRED_CURVE_COLUMNS = ("family", "model", "scale", "task", "metric", "metric_kind", "value")

# continuous partner used to re-score a discontinuous metric from records (paper: Brier score
# for multiple choice; token edit distance or target log-probability for generation)
RESCORE_PARTNERS = {
    "multiple_choice_grade": ("brier_score", "target_mean_logprob", "target_logprob"),
    "exact_match": ("token_edit_distance", "target_logprob", "target_mean_logprob", "char_edit_distance"),
    # p ** L compounds per-token probabilities; its logarithm is the continuous version
    "target_prob": ("target_logprob", "target_mean_logprob", "token_edit_distance"),
}
_DEFAULT_PARTNERS = ("target_logprob", "target_mean_logprob", "token_edit_distance", "char_edit_distance",
                     "brier_score")

EMERGENCE_COLUMNS = [
    "rank", "family", "task", "shots", "metric", "metric_kind", "higher_is_better", "n_models",
    "emergence_score", "flat_then_jump", "judged_on", "relative_score", "apparent_emergence", "evidence",
    "flat_share", "rise", "insufficient", "scale_min", "scale_max", "value_first", "value_last", "origin",
]
EVIDENCE_LABELS = ("resolved", "not resolved", "no intervals")


# ----------------------------------------------------------------------------- vectorised score


@dataclass(frozen=True)
class GroupScores:
    """Emergence scores of many curves at once, one entry per group id (0..n_groups-1)."""

    score: np.ndarray
    flat_then_jump: np.ndarray
    n_models: np.ndarray
    insufficient: np.ndarray


def grouped_emergence_scores(group_ids, scale, values) -> GroupScores:
    """:func:`mirage.stats.emergence_score` for every curve of a long table, in numpy.

    ``group_ids`` are 0..G-1 (every id present). Points are sorted by (group, scale) with a
    stable sort, so ties in scale keep their row order exactly as the per-curve function does;
    medians of squared steps come from one sort of all steps by (group, step), so the result is
    bit-for-bit the per-curve one.
    """
    g = np.asarray(group_ids, dtype=np.int64)
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    if not (len(g) == len(x) == len(y)):
        raise ValueError("group_ids, scale and values must have the same length")
    if len(g) == 0:
        empty = np.array([], dtype=float)
        return GroupScores(empty, empty.astype(bool), empty.astype(np.int64), empty.astype(bool))
    order = np.lexsort((x, g))
    g, y = g[order], y[order]
    n_groups = int(g.max()) + 1
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ymax = np.maximum.reduceat(y, starts)
    ymin = np.minimum.reduceat(y, starts)
    pos = np.arange(len(y)) - starts[g]
    big = np.iinfo(np.int64).max
    # first occurrence, as np.argmax / np.argmin
    i_max = np.minimum.reduceat(np.where(y == ymax[g], pos, big), starts)
    i_min = np.minimum.reduceat(np.where(y == ymin[g], pos, big), starts)
    sign = np.sign(i_max - i_min).astype(float)
    spread = ymax - ymin
    same = g[1:] == g[:-1]
    d2 = np.diff(y)[same] ** 2
    dg = g[1:][same]
    d2 = d2[np.lexsort((d2, dg))]
    m = counts - 1
    dstart = np.concatenate([[0], np.cumsum(m)[:-1]])
    has = m > 0
    lo = np.where(has, dstart + (m - 1) // 2, 0)
    hi = np.where(has, dstart + m // 2, 0)
    med = np.full(n_groups, np.nan)
    if len(d2):
        med = np.where(has, (d2[np.minimum(lo, len(d2) - 1)] + d2[np.minimum(hi, len(d2) - 1)]) / 2, np.nan)
    insufficient = counts < 3
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(spread == 0, 0.0,
                         np.where(med == 0, sign * np.inf, sign * spread / np.sqrt(med)))
    flat_then_jump = (~insufficient) & (spread != 0) & (med == 0)
    score = np.where(insufficient, np.nan, score)
    return GroupScores(score, flat_then_jump, counts, insufficient)


# ----------------------------------------------------------------------------- curves -> scores


def _check_curves(curves: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))}", "curves")
    if curves.empty:
        raise MirageInputError("no curve points", "curves")
    frame = curves.copy()
    if "shots" not in frame.columns:
        frame["shots"] = pd.NA
    frame["shots"] = frame["shots"].astype("Int64")
    for col in ("value", "scale"):
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            row = frame[bad].iloc[0]
            raise MirageInputError(
                f"{int(bad.sum())} non-finite {col!r} value(s), first in {row['family']} / {row['task']} / "
                f"{row['metric']} / {row['model']}", "curves")
        frame[col] = v
    if "higher_is_better" not in frame.columns:
        known = {m: metric_kind(m) for m in frame["metric"].unique()}
        frame["higher_is_better"] = frame["metric"].map(lambda m: known[m][1] if known[m] else True)
    dup = frame.duplicated(CURVE_KEY + ["model"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise MirageInputError(f"model {row['model']!r} appears twice in curve {row['family']} / {row['task']} / "
                               f"{row['metric']}", "curves")
    return frame


def judged_values(curves: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values on the judged scale, higher-is-better on it, whether a transform was applied)."""
    from .analysis import probability_scale

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


def _evidence_gate(frame: pd.DataFrame, gid: np.ndarray, judged: np.ndarray, higher: np.ndarray,
                   settings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(passes shape and effect, evidence label, flat share, rise) per group, on the judged scale."""
    from .evidence import apparent_emergence

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
    from .analysis import probability_scale

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
    ae = apparent_emergence(x, y, lo_p, hi_p, np.isfinite(y), higher_is_better=head_higher, min_effect=effect,
                            floor_band=settings.floor_band, min_flat_share=settings.min_flat_share, min_models=3)
    evidence = np.where(~ae.has_intervals, "no intervals", np.where(ae.rise_resolved, "resolved", "not resolved"))
    shape_ok = (ae.flat_share >= settings.min_flat_share) & (ae.rise >= effect) & (ae.rise > 0)
    return shape_ok, evidence.astype(object), ae.flat_share, ae.rise


def curve_emergence(curves: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, settings=None) -> pd.DataFrame:
    """One row per curve: emergence score, relative score, evidence, apparent emergence; strongest first.

    ``settings``: the :class:`mirage.verdicts.VerdictSettings` whose evidence gate applies
    (defaults); curves without ``ci_low``/``ci_high`` have no intervals.
    """
    from .verdicts import VerdictSettings

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
    table = pd.DataFrame({
        "family": head["family"].to_numpy(), "task": head["task"].to_numpy(),
        "shots": head["shots"].to_numpy(), "metric": head["metric"].to_numpy(),
        "metric_kind": head["metric_kind"].to_numpy(),
        "higher_is_better": head["higher_is_better"].astype(bool).to_numpy(),
        "n_models": raw.n_models, "emergence_score": raw.score,
        "flat_then_jump": judged_scores.flat_then_jump,
        "judged_on": np.where(moved[first_idx], "per-token probability", "value"),
        "relative_score": relative,
        "apparent_emergence": scored_high & shape_ok & (evidence != "not resolved"),
        "evidence": evidence, "flat_share": flat_share, "rise": rise,
        "insufficient": raw.insufficient,
        "scale_min": scale_min, "scale_max": scale_max, "value_first": value_first, "value_last": value_last,
        "origin": head["origin"].to_numpy() if "origin" in head.columns else "scores",
    })
    table["shots"] = table["shots"].astype("Int64")
    for extra in ("preferred", "aggregate"):
        if extra in head.columns:
            table[extra] = head[extra].to_numpy()
    # strongest first: +inf (flat then jump upwards) leads, unscored curves last
    table["_key"] = np.nan_to_num(table["relative_score"].to_numpy(dtype=float), nan=-np.inf)
    table = table.sort_values(["_key", "family", "task", "metric", "shots"],
                              ascending=[False, True, True, True, True], kind="stable", na_position="last")
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
    for level, keys in (("metric_kind", ["metric_kind"]), ("metric", ["metric", "metric_kind"])):
        if emergence.empty:
            continue
        g = emergence.groupby(keys, sort=True, dropna=False)
        s = scored.groupby(keys, sort=True, dropna=False)
        resolved = scored[scored["apparent_emergence"] & (scored["evidence"] == "resolved")]
        part = pd.DataFrame({
            "n_curves": g.size(),
            "n_scored": s.size(),
            "n_apparent": s["apparent_emergence"].sum(),
            "n_apparent_resolved": resolved.groupby(keys, sort=True, dropna=False).size(),
            "n_flat_then_jump": s["flat_then_jump"].sum(),
            "median_relative_score": s["relative_score"].median(),
        }).reset_index()
        part["n_scored"] = part["n_scored"].fillna(0).astype(int)
        part["n_apparent"] = part["n_apparent"].fillna(0).astype(int)
        part["n_apparent_resolved"] = part["n_apparent_resolved"].fillna(0).astype(int)
        part["n_flat_then_jump"] = part["n_flat_then_jump"].fillna(0).astype(int)
        part.insert(0, "level", level)
        part.insert(1, "name", part[keys[0]])
        if level == "metric_kind":
            part = part.drop(columns="metric_kind").assign(metric_kind=part["name"])
        else:
            part = part.drop(columns="metric")
        parts.append(part)
    cols = ["level", "name", "metric_kind", "n_curves", "share_of_curves", "n_scored", "n_apparent",
            "n_apparent_resolved", "share_apparent", "share_of_all_apparent", "n_flat_then_jump",
            "median_relative_score"]
    if not parts:
        return pd.DataFrame(columns=cols)
    table = pd.concat(parts, ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["share_apparent"] = np.where(table["n_scored"] > 0, table["n_apparent"] / table["n_scored"].clip(lower=1), np.nan)
        table["share_of_all_apparent"] = table["n_apparent"] / total if total else np.nan
        # the base rate: how much of the collection this metric (or kind) is
        table["share_of_curves"] = table["n_curves"] / max(len(emergence), 1)
    table["_lvl"] = table["level"].map({"metric_kind": 0, "metric": 1})
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
    left = sharp[key + ["metric", "metric_kind", "n_models", "emergence_score", "relative_score", "flat_then_jump", "origin"]]
    right = cont[key + ["metric", "n_models", "emergence_score", "relative_score", "apparent_emergence"]]
    pairs = left.merge(right, on=key, suffixes=("_sharp", "_continuous"))
    pairs = pairs.rename(columns={
        "metric_sharp": "sharp_metric", "metric_kind": "sharp_kind", "metric_continuous": "continuous_metric",
        "apparent_emergence": "continuous_apparent",
    })
    pairs["only_under_sharp_metric"] = ~pairs["continuous_apparent"].astype(bool)
    cols = ["family", "task", "shots", "sharp_metric", "sharp_kind", "continuous_metric", "only_under_sharp_metric",
            "relative_score_sharp", "relative_score_continuous", "emergence_score_sharp", "emergence_score_continuous",
            "flat_then_jump", "continuous_apparent", "n_models_sharp", "n_models_continuous", "origin"]
    pairs = pairs.reindex(columns=cols)
    pairs["shots"] = pairs["shots"].astype("Int64")
    return pairs.sort_values(["family", "task", "shots", "sharp_metric", "continuous_metric"], kind="stable").reset_index(drop=True)


def rescore_table(emergence: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The paper's LaMDA experiment on the user's records: each apparent emergence of a curve
    computed from per-sample records, re-scored with one continuous metric of the same samples
    (Brier score for multiple choice; token edit distance, else target log-probability, for
    generation). ``remains_emergent`` says whether the re-scored curve still looks emergent."""
    cols = ["family", "task", "shots", "metric", "relative_score", "rescore_metric", "rescore_relative_score",
            "remains_emergent"]
    rec = pairs[pairs["origin"] == "records"]
    if rec.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (fam, task, shots, metric), g in rec.groupby(["family", "task", "shots", "sharp_metric"], sort=True, dropna=False):
        prefs = RESCORE_PARTNERS.get(canonical_metric_name(metric), ()) + _DEFAULT_PARTNERS
        rank: dict[str, int] = {}
        for i, m in enumerate(prefs):
            rank.setdefault(m, i)  # first mention wins: the metric's own list comes first
        g = g.assign(_r=g["continuous_metric"].map(lambda m: rank.get(m, len(prefs)))).sort_values(["_r", "continuous_metric"])
        best = g.iloc[0]
        rows.append(dict(family=fam, task=task, shots=shots, metric=metric, relative_score=best["relative_score_sharp"],
                         rescore_metric=best["continuous_metric"], rescore_relative_score=best["relative_score_continuous"],
                         remains_emergent=bool(best["continuous_apparent"])))
    table = pd.DataFrame(rows, columns=cols)
    table["shots"] = table["shots"].astype("Int64")
    return table


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class MetaResult:
    """Everything ``mirage meta`` computes; the tables are what it writes as CSV."""

    curves: pd.DataFrame
    emergence: pd.DataFrame
    by_metric: pd.DataFrame
    pairs: pd.DataFrame
    rescore: pd.DataFrame
    summary: dict


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
        "share_apparent_in_discontinuous": float(kinds.get("discontinuous", 0) / len(apparent)) if len(apparent) else None,
        "n_pairs": int(len(pairs)),
        "n_tasks_emergent_only_under_sharp_metric": int(
            pairs.loc[pairs["only_under_sharp_metric"].astype(bool), ["family", "task", "shots", "sharp_metric"]]
            .drop_duplicates().shape[0]) if len(pairs) else 0,
        "rescored": int(len(rescore)),
        "remaining_after_rescore": int(rescore["remains_emergent"].sum()) if len(rescore) else 0,
        "n_families": int(emergence["family"].nunique()),
        "n_tasks": int(emergence["task"].nunique()),
        "n_metrics": int(emergence["metric"].nunique()),
    }
    return MetaResult(curves, emergence, by_metric, pairs, rescore, summary)


# ----------------------------------------------------------------------------- inputs


def read_meta_inputs(paths: Sequence[str | Path], *, scale: str | None = None, filters=None,
                     family: str | None = None, scale_from: str | None = None, tokenizer: str | None = None):
    """Everything ``analyze`` reads, BIG-bench results included, as one :class:`~mirage.readers.Inputs`.

    :func:`mirage.readers.read_inputs` recognises every kind by content: BIG-bench
    ``scores_*.json`` are score files and ``full-log_*.json`` per-sample records; with ``scale``
    None, BIG-bench results use flop-matched non-embedding parameters as BIG-bench plots them.
    """
    from .readers import read_inputs

    return read_inputs(paths, scale=scale, filters=filters, family=family, scale_from=scale_from, tokenizer=tokenizer)


def meta_curves(inputs, settings=None) -> pd.DataFrame:
    """Curves of the inputs (the one code path of ``mirage analyze``), with ``origin``
    = ``records`` for curves computed from per-sample records, else ``scores``."""
    from .analysis import AnalysisSettings, collect_curves

    curves, samples, _unknown = collect_curves(inputs, settings or AnalysisSettings())
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values")
    curves = curves.copy()
    curves["origin"] = "scores"
    if samples is not None:
        keys = samples[["family", "task", "shots"]].drop_duplicates()
        keys["shots"] = keys["shots"].astype("Int64")
        hit = curves[["family", "task", "shots"]].merge(keys.assign(_rec=True), how="left", on=["family", "task", "shots"])
        curves.loc[hit["_rec"].fillna(False).astype(bool).to_numpy(), "origin"] = "records"
    return curves


# ----------------------------------------------------------------------------- figures and report

_KIND_COLOUR = {"discontinuous": "#b3261e", "nonlinear": "#e08a00", "linear": "#1f5fbf", "unknown": "#777777"}


def plot_score_distribution(emergence: pd.DataFrame, threshold: float, max_metrics: int = 25):
    """Relative emergence score of every scored curve, one row per metric (symlog axis);
    ``inf`` (flat then jump) is drawn at the right edge."""
    from .report import pyplot

    plt = pyplot()
    scored = emergence[~emergence["insufficient"]]
    order = (scored.groupby("metric")["relative_score"].size().sort_values(ascending=False).head(max_metrics).index)
    order = sorted(order, key=lambda m: -np.nan_to_num(scored.loc[scored["metric"] == m, "relative_score"].median(), nan=-1e300, posinf=1e300, neginf=-1e300))
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * max(len(order), 3) + 1.4))
    finite = scored["relative_score"].replace([np.inf, -np.inf], np.nan)
    edge = max(float(np.nanmax(finite.abs())) if finite.notna().any() else 1.0, threshold) * 3
    rng = np.random.default_rng(0)  # jitter only; seeded so the figure is reproducible
    for row, metric in enumerate(order):
        s = scored[scored["metric"] == metric]
        v = s["relative_score"].to_numpy(dtype=float)
        inf = np.isinf(v)
        v = np.where(inf, np.sign(v) * edge, v)
        kind = s["metric_kind"].iloc[0]
        y = row + rng.uniform(-0.25, 0.25, len(v))
        ax.scatter(v[~inf], y[~inf], s=10, alpha=0.6, color=_KIND_COLOUR.get(kind, "#777"))
        ax.scatter(v[inf], y[inf], s=28, marker=">", color=_KIND_COLOUR.get(kind, "#777"))
        if len(v):  # median over every curve, inf counted at the edge where it is drawn
            ax.plot([np.median(v)] * 2, [row - 0.35, row + 0.35], color="black", lw=1.2)
    ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set_xscale("symlog", linthresh=1.0)
    left = min(float(np.nanmin(np.where(np.isinf(finite), np.nan, finite))) if finite.notna().any() else 0.0, 0.0)
    ax.set_xlim(left * 1.5 - 0.5, edge * 1.6)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("relative emergence score (1 = even steps; ▶ at the edge = inf, flat then jump)", fontsize=9)
    ax.set_title(f"Emergence scores per metric (threshold {threshold:g} dashed)", fontsize=10)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in _KIND_COLOUR.items()
               if k in set(scored["metric_kind"])]
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.grid(alpha=0.25, axis="x")
    fig.tight_layout()
    return fig


def plot_strongest(curves: pd.DataFrame, emergence: pd.DataFrame, pairs: pd.DataFrame, top: int = 12):
    """The strongest apparent emergences, one panel each; where a continuous metric of the same
    family and task exists its curve is drawn too (blue, rescaled onto the panel's range)."""
    from .report import pyplot

    plt = pyplot()
    chosen = emergence[emergence["apparent_emergence"]].head(top)
    if chosen.empty:
        return None
    n = len(chosen)
    ncols = min(4, n)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.1 * nrows), squeeze=False)
    index = curves.set_index(CURVE_KEY).sort_index()
    for ax, row in zip(axes.ravel(), chosen.itertuples(index=False)):
        key = (row.family, row.task, row.shots, row.metric)
        g = index.loc[key].sort_values("scale")
        ax.plot(g["scale"], g["value"], "o-", color=_KIND_COLOUR.get(row.metric_kind, "#777"), ms=4)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())  # minor log ticks cost most of the drawing time
        score = "inf" if math.isinf(row.relative_score) else f"{row.relative_score:.1f}"
        shots = "" if pd.isna(row.shots) else f", {int(row.shots)}-shot"
        ax.set_title(f"#{row.rank} {row.family} · {row.task}{shots}\n{row.metric} (score {score})", fontsize=8)
        ax.tick_params(labelsize=7)
        partner = pairs[(pairs["family"] == row.family) & (pairs["task"] == row.task)
                        & (pairs["sharp_metric"] == row.metric)
                        & ((pairs["shots"] == row.shots) if not pd.isna(row.shots) else pairs["shots"].isna())]
        if len(partner):
            # the continuous partner, min-max rescaled onto this panel's range and oriented so
            # improvement goes up: one axis per panel (twin axes double the drawing time)
            pm = partner["continuous_metric"].iloc[0]
            pg = index.loc[(row.family, row.task, row.shots, pm)].sort_values("scale")
            pv = pg["value"].to_numpy(dtype=float)
            if not bool(pg["higher_is_better"].iloc[0]):
                pv = -pv
            span = pv.max() - pv.min()
            lo, hi = float(g["value"].min()), float(g["value"].max())
            if span > 0:
                ax.plot(pg["scale"], lo + (pv - pv.min()) / span * (hi - lo), "s--", color=_KIND_COLOUR["linear"],
                        ms=3, lw=1, label=f"{pm} (rescaled, better ↑)")
                ax.legend(fontsize=6, loc="upper left", frameon=False)
        ax.grid(alpha=0.25, lw=0.5)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    # fixed spacing: tight_layout with twin axes costs seconds per figure
    fig.subplots_adjust(left=0.05, right=0.95, bottom=0.06, top=0.92, wspace=0.3, hspace=0.55)
    return fig


_DEFINITIONS_HTML = """
<p><b>Emergence score</b> (Srivastava et al. 2022): <code>sign(argmax y − argmin y) · (max y − min y) /
sqrt(median (y<sub>i</sub> − y<sub>i−1</sub>)²)</code> over a curve's models sorted by scale, on the values as reported.
A curve flat at one value and then jumping has a zero median step and scores <code>inf</code>.</p>
<p><b>Relative score</b>: the same score on the scale where improvements compare (perplexity-like metrics as
per-token probability <code>1/ppl</code>, <code>exp(mean log p)</code>), signed so improvement is positive,
divided by <code>n_models − 1</code>: a curve improving in equal steps scores 1.
A curve is an <b>apparent emergence</b> when its relative score is at least the threshold
(<b>{threshold:g}</b>; <code>--threshold</code>) and it passes the verdicts' evidence gate: it stays near its
smallest model's value over part of the log-scale range before it rises (a curve that saturates from a high
start does not), a discontinuous metric rises by at least the minimum effect, and the intervals resolve the rise
(<code>evidence</code>: resolved; curves without intervals, such as BIG-bench score files, are marked
<i>no intervals</i> and counted apart in <code>n_apparent_resolved</code>). Each kind's share of the apparent
emergences sits beside its share of all curves (<code>share_of_curves</code>), its base rate. Curves of fewer
than 3 models are not scored.</p>
<p><b>Pairs</b>: an apparently emergent discontinuous (or nonlinear) curve and a continuous curve of the same
family, task and shots; <i>only under sharp metric</i> when the continuous one is not an apparent emergence.
<b>Re-scoring</b> (curves from per-sample records only): each apparent emergence re-scored with the Brier
score (multiple choice) or token edit distance / target log-probability (generation).</p>
"""


def write_meta_report(path: Path, result: MetaResult, figures: dict, title: str) -> None:
    from .fsio import write_text
    from .report import html_document, table_html

    s = result.summary
    parts = [f"<div class=\"box\"><p>{s['n_curves']} curves ({s['n_scored']} scored) from {s['n_families']} families, "
             f"{s['n_tasks']} tasks, {s['n_metrics']} metrics. <b>{s['n_apparent']}</b> apparent emergences at threshold "
             f"{s['threshold']:g} ({s['n_flat_then_jump']} scored curves flat then jumping)"]
    if s["n_apparent"]:
        parts.append(" — by kind: " + ", ".join(f"{html.escape(k)} {v}" for k, v in s["apparent_by_kind"].items()))
    parts.append(".</p>")
    if s["rescored"]:
        parts.append(f"<p>Re-scored with a continuous metric of the same samples: <b>{s['remaining_after_rescore']} of "
                     f"{s['rescored']}</b> apparent emergences remain.</p>")
    parts.append("</div><h2>Definitions</h2>" + _DEFINITIONS_HTML.format(threshold=s["threshold"]))
    bm = result.by_metric
    parts.append("<h2>Where apparent emergence lives</h2>" + table_html(bm[bm["level"] == "metric_kind"].drop(columns="level"))
                 + table_html(bm[bm["level"] == "metric"].drop(columns="level"), max_rows=40))
    for name, caption in (("emergence_distribution.png", "Distribution of relative emergence scores per metric"),
                          ("strongest.png", "Strongest apparent emergences (blue dashed: a continuous metric of the same family and task, rescaled)")):
        if name in figures:
            parts.append(f"<figure><img alt=\"{html.escape(caption)}\" src=\"{figures[name]}\">"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    cols = ["rank", "family", "task", "shots", "metric", "metric_kind", "n_models", "emergence_score", "relative_score",
            "flat_then_jump"]
    parts.append("<h2>Strongest apparent emergences</h2>" + table_html(result.emergence[result.emergence["apparent_emergence"]][cols], max_rows=30))
    if len(result.pairs):
        only = result.pairs[result.pairs["only_under_sharp_metric"].astype(bool)]
        parts.append(f"<h2>Emergent under a sharp metric only ({len(only)} of {len(result.pairs)} pairs)</h2>"
                     + table_html(only.drop(columns=["origin"]), max_rows=40))
    parts.append("<h2>Re-scoring from per-sample records</h2>")
    if len(result.rescore):
        parts.append(table_html(result.rescore, max_rows=40))
    else:
        parts.append("<p class=\"muted\">No apparent emergence comes from per-sample records, so nothing could be "
                     "re-scored (score tables hold only the metrics they were published with).</p>")
    write_text(path, html_document(title, "\n".join(parts)))


def write_meta(result: MetaResult, out_dir, *, top: int = 12, title: str = "mirage meta-analysis",
               progress: bool = False) -> dict:
    """Write ``meta_curves.csv, meta_emergence.csv, meta_by_metric.csv, meta_pairs.csv,
    meta_rescore.csv, summary.json, figures/, report.html`` atomically; return the figure paths."""
    from .fsio import atomic_dir, write_csv, write_json
    from .report import close

    steps = [("emergence_distribution.png", lambda: plot_score_distribution(result.emergence, result.summary["threshold"])),
             ("strongest.png", lambda: plot_strongest(result.curves, result.emergence, result.pairs, top))]
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / "meta_curves.csv", result.curves)
        write_csv(tmp / "meta_emergence.csv", result.emergence)
        write_csv(tmp / "meta_by_metric.csv", result.by_metric)
        write_csv(tmp / "meta_pairs.csv", result.pairs)
        write_csv(tmp / "meta_rescore.csv", result.rescore)
        (tmp / "figures").mkdir()
        uris = {}
        iterator = steps
        if progress:
            from rich.progress import track

            iterator = track(steps, description="figures")
        for name, make in iterator:
            fig = make()
            if fig is None:
                continue
            # render once: the same PNG bytes go to figures/ and into the report
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            close(fig)
            (tmp / "figures" / name).write_bytes(buf.getvalue())
            uris[name] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        write_json(tmp / "summary.json", dict(result.summary, figures=sorted(uris)))
        write_meta_report(tmp / "report.html", result, uris, title)
    return {name: Path(out_dir) / "figures" / name for name in uris}


def run_meta(paths: Sequence[str | Path], out_dir, *, threshold: float = DEFAULT_THRESHOLD, scale: str | None = None,
             filters=None, family: str | None = None, scale_from: str | None = None, settings=None,
             top: int = 12, progress: bool = False, tokenizer: str | None = None) -> MetaResult:
    """Read, analyse and write: the whole of ``mirage meta``. Nothing is written on bad input."""
    inputs = read_meta_inputs(paths, scale=scale, filters=filters, family=family, scale_from=scale_from,
                              tokenizer=tokenizer)
    result = meta_analysis(meta_curves(inputs, settings), threshold)
    # what reading decided (the x axis of BIG-bench results, dropped NaN scores, the units of
    # token counts) belongs in the output beside the numbers it shaped
    import dataclasses

    result = dataclasses.replace(result, summary={**result.summary, "inputs": list(inputs.sources),
                                                  "scale_column": inputs.scale_column, "notes": list(inputs.notes)})
    write_meta(result, out_dir, top=top, progress=progress)
    return result
