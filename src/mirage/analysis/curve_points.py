"""Curve points of per-sample metrics: one (family, task, shots) group's ``curves.csv`` rows with
their intervals (:func:`record_group_curves`), and the points as the curves table
(:func:`curve_frame`). The streamed record analysis (:mod:`mirage.analysis.stream`) calls these one
unit at a time; :mod:`mirage.analysis.curves` builds the whole table on it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import METRICS
from ..schema.settings import AnalysisSettings
from ..schema.tables import CURVES, set_shots
from ..schema.vocab import CIMethod
from ..stats import CountsAhead, bootstrap_mean_ci, wilson_interval

CURVE_COLUMNS = list(CURVES.names)


def record_group_curves(
    family: Any,
    task: Any,
    shots: Any,
    group: pd.DataFrame,
    settings: AnalysisSettings,
    group_index: int,
    ahead: CountsAhead | None = None,
) -> list[dict[str, Any]]:
    """The curve points (``curves.csv`` rows) of one (family, task, shots) group of per-sample
    metrics; ``group_index`` is the group's place among all groups in sorted order, which seeds its
    bootstrap, so a group's intervals do not depend on how the input was split. ``ahead``: the
    bootstrap's counts, if drawn already (:func:`bootstrap_counts_ahead`)."""
    metric_names = [c for c in group.columns if c in METRICS]
    rows: list[dict[str, Any]] = []
    models = group[["model", "scale"]].drop_duplicates().sort_values(["scale", "model"])
    boot_metrics = [m for m in metric_names if not METRICS[m].binary and group[m].notna().any()]
    boot: dict[tuple[str, Any], tuple[float, float]] = {}
    if boot_metrics and settings.bootstrap > 0:
        # items x (models * metrics) matrix, NaN where a model lacks an item
        series = pd.MultiIndex.from_product([boot_metrics, models["model"]])
        b_lo, b_hi = bootstrap_mean_ci(
            _items_by_series(group, boot_metrics, models["model"], series),
            settings.bootstrap,
            settings.level,
            seed=_group_seed(settings.seed, group_index),
            ahead=ahead,
        )
        for j, key in enumerate(series):
            boot[key] = (b_lo[j], b_hi[j])
    rows_of = group.groupby("model", sort=False).indices  # each model's rows, in input order
    for metric in metric_names:
        meta = METRICS[metric]
        kind = settings.kind_overrides.get(metric, meta.kind)
        column = group[metric].to_numpy(dtype=float)
        for model, scale in models.itertuples(index=False):
            vals = column[rows_of[model]]
            vals = vals[np.isfinite(vals)]
            if len(vals) == 0:
                continue
            value = float(vals.mean())
            if meta.binary:
                w_lo, w_hi = wilson_interval(vals.sum(), len(vals), settings.level)
                lo, hi, method = float(w_lo), float(w_hi), CIMethod.WILSON.value
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
    return rows


def _items_by_series(group: pd.DataFrame, metrics: list[str], models: pd.Series, series: pd.MultiIndex) -> np.ndarray:
    """A group's per-sample metrics as an items (sample ids in sorted order) x ``series`` (metric,
    model) matrix, NaN where a model lacks an item: the values of ``group.pivot(index="sample_id",
    columns="model", values=metrics)`` in ``series`` order, placed by integer codes (the pivot
    itself where a sample id is missing or repeated, which it reports)."""
    items, ids = pd.factorize(group["sample_id"], sort=True)
    model_at = _positions(group["model"], pd.Index(models))
    n_models = len(models)
    cell = items.astype(np.int64) * n_models + model_at
    if len(items) and (items.min() < 0 or model_at.min() < 0 or np.bincount(cell).max() > 1):
        wide = group.pivot(index="sample_id", columns="model", values=metrics)
        return wide.reindex(columns=series).to_numpy(dtype=float)
    out = np.full((len(ids), len(metrics) * n_models), np.nan)
    # flat positions: row items, column j * n_models + model_at (one index for every metric)
    flat = items.astype(np.int64) * (len(metrics) * n_models) + model_at
    cells = out.reshape(-1)
    for j, metric in enumerate(metrics):
        cells[flat + j * n_models] = group[metric].to_numpy(dtype=float)
    return out


def _positions(names: pd.Series, index: pd.Index) -> np.ndarray:
    """``index.get_indexer(names)`` (-1 where absent), looked up once per distinct name: a unit's
    model column repeats a few names hundreds of thousands of times."""
    codes, distinct = pd.factorize(names)
    return np.where(codes < 0, -1, index.get_indexer(distinct)[codes])


# the most counts drawn ahead (held at once, where drawing in place holds a block of 16M): 256 MB
_AHEAD_ENTRIES = 64_000_000


def bootstrap_counts_ahead(
    n_items: int, settings: AnalysisSettings, group_index: int, pool: Executor
) -> CountsAhead | None:
    """Start drawing the bootstrap counts of group ``group_index`` with ``n_items`` items on
    ``pool``, before its per-sample metrics are computed (None: no bootstrap)."""
    if settings.bootstrap <= 0 or n_items <= 0 or n_items * settings.bootstrap > _AHEAD_ENTRIES:
        return None
    return CountsAhead(n_items, settings.bootstrap, _group_seed(settings.seed, group_index), pool)


def _group_seed(seed: int, index: int) -> np.random.SeedSequence:
    """One seed per (family, task, shots) group: its bootstrap is the same whatever else is analysed."""
    return np.random.SeedSequence([seed, index])


def curve_frame(rows: list[dict[str, Any]] | pd.DataFrame, curve_by: Sequence[str] = ()) -> pd.DataFrame:
    """Curve points as the ``curves.csv`` table: its columns first, then any extra ones, sorted by
    family, task, shots, curve-by columns, metric, scale and model."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS + list(curve_by))
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS and c not in ("source",)]
    frame = frame[CURVE_COLUMNS + extra]
    set_shots(frame)
    order = ["family", "task", "shots", *curve_by, "metric", "scale", "model"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)
