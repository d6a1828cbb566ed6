# ruff: noqa: B023
"""The emergence table: the emergence score and largest step of every curve of at least three
models (the ``emergence.csv`` of ``mirage analyze`` and ``mirage theory``,
:data:`mirage.schema.tables.EMERGENCE`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mirage.metrics import probability_scale
from mirage.schema.tables import EMERGENCE, INSUFFICIENT, set_shots
from mirage.schema.vocab import CONTINUOUS_KINDS
from mirage.stats import emergence_score, jump_sharpness


def emergence_table(curves: pd.DataFrame, curve_by: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(emergence scores of curves with >= 3 models, curves with too few models to score).

    ``curves`` in the ``curves.csv`` format. The largest step (``jump_share``) of a continuous
    metric is measured on its per-token probability scale where it has one (``1/ppl``), as the
    paper reads perplexity.
    """
    rows, short = [], []
    ident = ["family", "task", "shots", *curve_by, "metric"]
    for key, g in curves.groupby(ident, sort=True, dropna=False):
        g = g.sort_values("scale", kind="stable")
        base = dict(zip(ident, key), metric_kind=g["metric_kind"].iloc[0], n_models=len(g))
        metric = base["metric"]
        es = emergence_score(g["scale"], g["value"])
        if es.insufficient:
            short.append(base)
            continue
        sh = jump_sharpness(g["scale"], _scaled(metric, g), *_scaled_ci(metric, g))
        rows.append(
            dict(
                base,
                emergence_score=es.score,
                flat_then_jump=es.flat_then_jump,
                jump_share=sh.jump_share,
                jump_resolved=sh.resolved,
                jump_at_scale=float(g["scale"].iloc[sh.jump_index]) if sh.n_models > 1 else math.nan,
                higher_is_better=bool(g["higher_is_better"].iloc[0]),
                scale_min=float(g["scale"].min()),
                scale_max=float(g["scale"].max()),
                value_first=float(g["value"].iloc[0]),
                value_last=float(g["value"].iloc[-1]),
            )
        )
    table = pd.DataFrame(rows, columns=EMERGENCE.columns_for(curve_by))
    set_shots(table)
    return table, pd.DataFrame(short, columns=INSUFFICIENT.columns_for(curve_by))


def _scaled(metric: str, g: pd.DataFrame) -> np.ndarray:
    kind = g["metric_kind"].iloc[0]
    v = g["value"].to_numpy(dtype=float)
    return probability_scale(metric, v) if kind in CONTINUOUS_KINDS else v


def _scaled_ci(metric: str, g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    kind = g["metric_kind"].iloc[0]
    lo, hi = g["ci_low"].to_numpy(dtype=float), g["ci_high"].to_numpy(dtype=float)
    if kind in CONTINUOUS_KINDS:
        a, b = probability_scale(metric, lo), probability_scale(metric, hi)
        return np.minimum(a, b), np.maximum(a, b)
    return lo, hi
