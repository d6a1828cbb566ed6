"""Curves: a metric against scale for one (family, task, shots, metric), with intervals.

From records: per-sample metrics (:func:`mirage.metrics.compute_sample_metrics`) averaged per
model, with Wilson intervals for binary metrics and a paired, seeded bootstrap over items for the
others. From score tables: the table's values, with Wilson intervals where ``n_samples`` is known
and normal ones from ``stderr``. Pure: tables in, tables out (the ``curves.csv`` spec,
:data:`mirage.schema.tables.CURVES`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import MirageInputError
from ..metrics import canonical_metric_name, metric_kind
from ..schema.results import Inputs
from ..schema.settings import AnalysisSettings
from ..schema.tables import set_shots
from ..schema.vocab import CIMethod, MetricKind
from ..stats import stderr_interval, wilson_interval
from .curve_points import CURVE_COLUMNS, curve_frame
from .stream import analyse_records


def curves_from_records(
    records: pa.Table, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample metrics and the curves they average into.

    Binary metrics (exact match, multiple-choice grade) get Wilson intervals, which stay
    honest at 0 of n; the others a percentile bootstrap over items, paired across models and
    metrics (one set of resamples per family and task), seeded by ``settings.seed``. The records
    are processed one (family, task) at a time (:mod:`mirage.analysis.stream`); the samples come
    back in the records' order.
    """
    part = analyse_records(records, settings, keep_samples=True)
    assert part.samples is not None
    return part.curves, part.samples


def curves_from_scores(
    scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, list[str]]:
    """Curves from a long score table; returns (curves, unknown metric names).

    Intervals: the table's ``stderr`` (normal, at ``settings.level``) where given; otherwise a
    Wilson interval for a proportion when ``n_samples`` is known; otherwise none.
    """
    frame = scores.copy()
    set_shots(frame)
    kinds, higher, unknown = _score_kinds(frame, settings.kind_overrides)
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
    return curve_frame(frame, tuple(settings.curve_by)), sorted(unknown)


def _score_kinds(frame: pd.DataFrame, overrides: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """(kind, higher-is-better, unknown names) per score row: a row's own ``metric_kind`` unless the
    metric's kind is overridden, else the registry's; names the registry does not know are unknown.
    Looked up once per distinct name, not once per row."""
    # codes by hashing (a sort of 2,000,000 names as Python objects took most of this step)
    inverse, distinct = pd.factorize(frame["metric"], use_na_sentinel=False)
    distinct = list(distinct)
    known = [metric_kind(n, overrides) for n in distinct]
    known_kind = np.array([k[0] if k else MetricKind.UNKNOWN.value for k in known], dtype=object)[inverse]
    known_higher = np.array([k[1] if k else True for k in known], dtype=bool)[inverse]
    is_known = np.array([k is not None for k in known], dtype=bool)
    overridden = np.array([canonical_metric_name(n) in overrides for n in distinct], dtype=bool)[inverse]
    if "metric_kind" in frame.columns:
        kind_codes, given_distinct = pd.factorize(frame["metric_kind"], use_na_sentinel=False)
        given = np.array(list(given_distinct), dtype=object)[kind_codes]
        usable_distinct = np.array([isinstance(v, str) and bool(v) for v in given_distinct], dtype=bool)
        usable = usable_distinct[kind_codes] & ~overridden
    else:
        given = np.full(len(frame), None, dtype=object)
        usable = np.zeros(len(frame), dtype=bool)
    kinds = np.where(usable, given, known_kind)
    unknown_codes = np.unique(inverse[~usable & ~is_known[inverse]])
    unknown = {distinct[c] for c in unknown_codes.tolist()}
    return kinds, known_higher, unknown


def curve_id(settings: AnalysisSettings) -> list[str]:
    """The columns that identify one curve: family, task, shots, the curve-by columns, metric."""
    return ["family", "task", "shots", *settings.curve_by, "metric"]


def collect_curves(inputs: Inputs, settings: AnalysisSettings) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """(curves, per-sample metrics or None, unknown metric names)."""
    rec_curves, samples = None, None
    if inputs.records is not None:
        if settings.curve_by:
            raise MirageInputError("applies to score tables; split records with --filter instead", "--curve-by")
        part = analyse_records(inputs.records, settings, keep_samples=True)
        rec_curves, samples = part.curves, part.samples
    sc_curves, unknown = curves_from_scores(inputs.scores, settings) if inputs.scores is not None else (None, [])
    return combine_curves(rec_curves, sc_curves, settings), samples, unknown


def combine_curves(
    record_curves: pd.DataFrame | None, score_curves: pd.DataFrame | None, settings: AnalysisSettings
) -> pd.DataFrame:
    """The curves table: the record curves, then the score tables' (checked: no point twice)."""
    parts = [p for p in (record_curves, score_curves) if p is not None]
    filled = [p for p in parts if not p.empty]
    if filled:
        curves = pd.concat(filled, ignore_index=True, sort=False)
    else:
        curves = parts[0] if parts else pd.DataFrame(columns=CURVE_COLUMNS)
    dup = curves.duplicated(curve_id(settings) + ["model"])
    if dup.any():
        row = curves[dup].iloc[0]
        hint = "" if settings.curve_by else " (if a column such as an operand tells the curves apart, pass --curve-by)"
        raise MirageInputError(
            f"the same curve point comes twice: family {row['family']!r}, model {row['model']!r}, "
            f"task {row['task']!r}, metric {row['metric']!r}{hint}"
        )
    return curves
