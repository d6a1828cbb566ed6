# ruff: noqa: B023
"""Curves: a metric against scale for one (family, task, shots, metric), with intervals.

From records: per-sample metrics (:func:`mirage.metrics.compute_sample_metrics`) averaged per
model, with Wilson intervals for binary metrics and a paired, seeded bootstrap over items for the
others. From score tables: the table's values, with Wilson intervals where ``n_samples`` is known
and normal ones from ``stderr``. Pure: tables in, tables out (the ``curves.csv`` spec,
:data:`mirage.schema.tables.CURVES`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mirage.errors import MirageInputError
from mirage.metrics import METRICS, canonical_metric_name, metric_kind
from mirage.schema.results import Inputs
from mirage.schema.settings import AnalysisSettings
from mirage.schema.tables import CURVES, set_shots
from mirage.schema.vocab import CIMethod, MetricKind
from mirage.stats import stderr_interval, wilson_interval

from .intervals import bootstrap_mean_ci
from .per_sample import compute_sample_metrics

CURVE_COLUMNS = list(CURVES.names)


def curves_from_records(
    records: pa.Table, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample metrics and the curves they average into.

    Binary metrics (exact match, multiple-choice grade) get Wilson intervals, which stay
    honest at 0 of n; the others a percentile bootstrap over items, paired across models and
    metrics (one set of resamples per family and task), seeded by ``settings.seed``.
    """
    samples = compute_sample_metrics(records, settings.metrics, settings.answer_regex)
    set_shots(samples)
    metric_names = [c for c in samples.columns if c in METRICS]
    rows = []
    for g_idx, ((family, task, shots), group) in enumerate(
        samples.groupby(["family", "task", "shots"], sort=True, dropna=False)
    ):
        models = group[["model", "scale"]].drop_duplicates().sort_values(["scale", "model"])
        boot_metrics = [m for m in metric_names if not METRICS[m].binary and group[m].notna().any()]
        boot = {}
        if boot_metrics and settings.bootstrap > 0:
            # items x (models * metrics) matrix, NaN where a model lacks an item
            wide = group.pivot(index="sample_id", columns="model", values=boot_metrics)
            wide = wide.reindex(columns=pd.MultiIndex.from_product([boot_metrics, models["model"]]))
            lo, hi = bootstrap_mean_ci(
                wide.to_numpy(dtype=float), settings.bootstrap, settings.level, seed=_group_seed(settings.seed, g_idx)
            )
            for j, key in enumerate(wide.columns):
                boot[key] = (lo[j], hi[j])
        by_model = group.groupby("model", sort=False)
        for metric in metric_names:
            meta = METRICS[metric]
            kind = settings.kind_overrides.get(metric, meta.kind)
            for model, scale in models.itertuples(index=False):
                vals = by_model.get_group(model)[metric].to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals) == 0:
                    continue
                value = float(vals.mean())
                if meta.binary:
                    lo, hi = wilson_interval(vals.sum(), len(vals), settings.level)
                    lo, hi, method = float(lo), float(hi), CIMethod.WILSON.value
                elif (metric, model) in boot:
                    lo, hi = boot[(metric, model)]
                    method = CIMethod.BOOTSTRAP.value
                else:
                    lo = hi = math.nan
                    method = CIMethod.NONE.value
                rows.append(
                    dict(
                        family=family,
                        model=model,
                        scale=float(scale),
                        task=task,
                        shots=shots,
                        metric=metric,
                        metric_kind=kind,
                        higher_is_better=meta.higher_is_better,
                        value=value,
                        ci_low=lo,
                        ci_high=hi,
                        n_samples=len(vals),
                        ci_method=method,
                        stderr=float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else math.nan,
                    )
                )
    return _curve_frame(rows), samples


def _group_seed(seed: int, index: int) -> np.random.SeedSequence:
    """One seed per (family, task, shots) group: its bootstrap is the same whatever else is analysed."""
    return np.random.SeedSequence([seed, index])


def curves_from_scores(
    scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, list[str]]:
    """Curves from a long score table; returns (curves, unknown metric names).

    Intervals: the table's ``stderr`` (normal, at ``settings.level``) where given; otherwise a
    Wilson interval for a proportion when ``n_samples`` is known; otherwise none.
    """
    frame = scores.copy()
    set_shots(frame)
    kinds, higher, unknown = [], [], set()
    explicit = frame["metric_kind"] if "metric_kind" in frame.columns else pd.Series([None] * len(frame))
    for name, given in zip(frame["metric"], explicit):
        known = metric_kind(name, settings.kind_overrides)
        if isinstance(given, str) and given and canonical_metric_name(name) not in settings.kind_overrides:
            kinds.append(given)
            higher.append(known[1] if known else True)
        elif known is None:
            kinds.append(MetricKind.UNKNOWN.value)
            higher.append(True)
            unknown.add(name)
        else:
            kinds.append(known[0])
            higher.append(known[1])
    frame["metric_kind"] = kinds
    if "higher_is_better" in frame.columns:
        frame["higher_is_better"] = frame["higher_is_better"].fillna(pd.Series(higher)).astype(bool)
    else:
        frame["higher_is_better"] = higher
    stderr = frame["stderr"].to_numpy(dtype=float)
    value = frame["value"].to_numpy(dtype=float)
    # a stderr of 0 is no interval: lm-eval writes 0 at 0/n and n/n, where the truth is "below 1/n"
    stderr = np.where(stderr > 0, stderr, np.nan)
    lo, hi = stderr_interval(value, stderr, settings.level)
    method = np.where(np.isfinite(stderr), CIMethod.STDERR.value, CIMethod.NONE.value).astype(object)
    n = frame["n_samples"].to_numpy(dtype=float) if "n_samples" in frame.columns else np.full(len(frame), np.nan)
    # proportions with a known n: Wilson, which stays honest at 0 of n (and beats stderr's normal interval)
    prop = (
        np.isfinite(n)
        & (n > 0)
        & (frame["metric_kind"] == MetricKind.DISCONTINUOUS.value).to_numpy()
        & (frame["value"].between(0, 1)).to_numpy()
    )
    if prop.any():
        wl, wh = wilson_interval(value[prop] * n[prop], n[prop], settings.level)
        lo[prop], hi[prop] = wl, wh
        method[prop] = CIMethod.WILSON.value
    frame["ci_low"], frame["ci_high"], frame["ci_method"] = lo, hi, method
    frame["n_samples"] = n
    missing = [c for c in settings.curve_by if c not in frame.columns]
    if missing:
        raise MirageInputError(f"no column(s) {', '.join(map(repr, missing))} in the score table", "--curve-by")
    return _curve_frame(frame, tuple(settings.curve_by)), sorted(unknown)


def _curve_frame(rows: list[dict[str, Any]] | pd.DataFrame, curve_by: Sequence[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS + list(curve_by))
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS and c not in ("source",)]
    frame = frame[CURVE_COLUMNS + extra]
    set_shots(frame)
    order = ["family", "task", "shots", *curve_by, "metric", "scale", "model"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def curve_id(settings: AnalysisSettings) -> list[str]:
    """The columns that identify one curve: family, task, shots, the curve-by columns, metric."""
    return ["family", "task", "shots", *settings.curve_by, "metric"]


def collect_curves(inputs: Inputs, settings: AnalysisSettings) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """(curves, per-sample metrics or None, unknown metric names)."""
    parts, samples, unknown = [], None, []
    if inputs.records is not None:
        if settings.curve_by:
            raise MirageInputError("applies to score tables; split records with --filter instead", "--curve-by")
        rec_curves, samples = curves_from_records(inputs.records, settings)
        parts.append(rec_curves)
    if inputs.scores is not None:
        sc_curves, unknown = curves_from_scores(inputs.scores, settings)
        parts.append(sc_curves)
    curves = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True, sort=False)
        if parts
        else pd.DataFrame(columns=CURVE_COLUMNS)
    )
    dup = curves.duplicated(curve_id(settings) + ["model"])
    if dup.any():
        row = curves[dup].iloc[0]
        hint = "" if settings.curve_by else " (if a column such as an operand tells the curves apart, pass --curve-by)"
        raise MirageInputError(
            f"the same curve point comes twice: family {row['family']!r}, model {row['model']!r}, "
            f"task {row['task']!r}, metric {row['metric']!r}{hint}"
        )
    return curves, samples, unknown
