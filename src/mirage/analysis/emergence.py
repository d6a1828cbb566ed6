"""The emergence table: the emergence score and largest step of every curve of at least three
models (the ``emergence.csv`` of ``mirage analyze`` and ``mirage theory``,
:data:`mirage.schema.tables.EMERGENCE`).

Every curve is scored in one pass of array operations (:func:`mirage.stats.grouped_emergence_scores`,
:func:`mirage.stats.grouped_jump_sharpness`), bit for bit what the one-curve functions give, so
250,000 curves cost about what 250 did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..metrics import probability_scale
from ..schema.tables import EMERGENCE, INSUFFICIENT, set_shots
from ..schema.vocab import CONTINUOUS_KINDS
from ..stats import grouped_emergence_scores, grouped_jump_sharpness


def emergence_table(curves: pd.DataFrame, curve_by: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(emergence scores of curves with >= 3 models, curves with too few models to score).

    ``curves`` in the ``curves.csv`` format. The largest step (``jump_share``) of a continuous
    metric is measured on its per-token probability scale where it has one (``1/ppl``), as the
    paper reads perplexity. A curve's kind and direction are those of its smallest model.
    """
    ident = ["family", "task", "shots", *curve_by, "metric"]
    columns = EMERGENCE.columns_for(curve_by)
    short_columns = INSUFFICIENT.columns_for(curve_by)
    if curves.empty:
        table = pd.DataFrame([], columns=columns)
        set_shots(table)
        return table, pd.DataFrame([], columns=short_columns)
    gid = curves.groupby(ident, sort=True, dropna=False).ngroup().to_numpy()
    scale = curves["scale"].to_numpy(dtype=float)
    value = curves["value"].to_numpy(dtype=float)
    # the points of every curve by scale (stable: ties keep the table's order), as the one-curve code
    order = np.lexsort((scale, gid))
    g_sorted = gid[order]
    n_groups = int(g_sorted.max()) + 1
    counts = np.bincount(g_sorted, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    head = curves.iloc[order[starts]]  # each curve's smallest model
    last = order[starts + counts - 1]
    scores = grouped_emergence_scores(gid, scale, value)
    kind = head["metric_kind"].to_numpy()
    continuous = np.isin(kind, list(CONTINUOUS_KINDS))[gid]  # per point: its curve's kind
    scaled, lo, hi = _probability_scaled(curves, continuous)
    sharp = grouped_jump_sharpness(gid, scale, scaled, lo, hi)
    ok = ~scores.insufficient
    keys = {col: head[col].to_numpy() for col in ident}
    base = {**keys, "metric_kind": kind, "n_models": counts}
    # one dict per short curve, with the key values groupby gives (plain ints, pd.NA), as before
    short_rows = np.flatnonzero(~ok)
    key_values = {col: head[col].iloc[short_rows].tolist() for col in ident}
    short = pd.DataFrame(
        [
            dict({col: key_values[col][i] for col in ident}, metric_kind=kind[r], n_models=int(counts[r]))
            for i, r in enumerate(short_rows)
        ],
        columns=short_columns,
    )
    pos = np.minimum(starts + sharp.jump_index, len(order) - 1)
    jump_at = np.where(counts > 1, scale[order[pos]], np.nan)
    table = pd.DataFrame(
        {
            **{c: v[ok] for c, v in base.items()},
            "emergence_score": scores.score[ok],
            "flat_then_jump": scores.flat_then_jump[ok],
            "jump_share": sharp.jump_share[ok],
            "jump_resolved": sharp.resolved[ok],
            "jump_at_scale": jump_at[ok],
            "higher_is_better": head["higher_is_better"].astype(bool).to_numpy()[ok],
            "scale_min": np.minimum.reduceat(scale[order], starts)[ok],
            "scale_max": np.maximum.reduceat(scale[order], starts)[ok],
            "value_first": value[order[starts]][ok],
            "value_last": value[last][ok],
        },
        columns=columns,
    )
    set_shots(table)
    return table.reset_index(drop=True), short.reset_index(drop=True)


def _probability_scaled(curves: pd.DataFrame, continuous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values and interval ends of continuous curves on their per-token probability scale."""
    value = curves["value"].to_numpy(dtype=float).copy()
    lo = curves["ci_low"].to_numpy(dtype=float).copy()
    hi = curves["ci_high"].to_numpy(dtype=float).copy()
    metric = curves["metric"].to_numpy()
    for name in pd.unique(metric[continuous]):
        rows = continuous & (metric == name)
        value[rows] = probability_scale(name, value[rows])
        a, b = probability_scale(name, lo[rows]), probability_scale(name, hi[rows])
        lo[rows], hi[rows] = np.minimum(a, b), np.maximum(a, b)
    return value, lo, hi
