# ruff: noqa: B023
"""``mirage analyze`` as one pure function: inputs -> curves, emergence scores, verdicts,
predictions and the better-statistics table, with a JSON-ready summary (:func:`run_analysis`).
Nothing here writes a file: :func:`mirage.io.outputs.write_analysis` does.

Data flow: records -> per-sample metrics -> curves (+ intervals); score tables -> curves
(+ intervals from n_samples (Wilson) or stderr); curves -> emergence scores; curves and
per-sample metrics -> verdicts (:mod:`mirage.analysis.verdicts`, with the tests of
:mod:`mirage.stats.evidence`).

The emergence score (Srivastava et al. 2022) is reported for every curve but does not decide a
verdict: with a handful of models it cannot tell sharp from smooth (a straight line over 8
models scores 7; a power-law log-probability scores 10-15). The verdict rule is described in
:mod:`mirage.analysis.verdicts` and ``docs/verdicts.md``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from mirage.errors import MirageInputError
from mirage.schema.results import AnalysisResult, Inputs
from mirage.schema.settings import AnalysisSettings
from mirage.schema.vocab import VERDICT_ORDER, RowKind

from .curves import collect_curves, curve_id
from .emergence import emergence_table
from .predictions import predict_exact_match
from .resolution import resolution_table
from .verdicts import verdicts_table


def run_analysis(inputs: Inputs, settings: AnalysisSettings = AnalysisSettings()) -> AnalysisResult:
    """Compute curves, emergence scores and verdicts (no files written)."""
    curves, samples, unknown = collect_curves(inputs, settings)
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values to analyse")
    emergence, insufficient = emergence_table(curves, tuple(settings.curve_by))
    verdicts, evidence = verdicts_table(curves, samples, settings.verdict_settings())
    summary = _summary(inputs, settings, curves, emergence, verdicts, insufficient, unknown)
    predictions = fits = lengths = None
    if (
        samples is not None
        and "exact_match" in samples.columns
        and (samples.columns.intersection(["target_mean_logprob", "token_edit_distance"]).size)
    ):
        predictions, fits, lengths = predict_exact_match(samples, settings)
        summary["predictions"] = _prediction_summary(predictions)
    resolution = resolution_table(curves, samples, predictions, settings) if samples is not None else None
    if resolution is not None and len(resolution):
        summary["above_chance"] = {
            "models": int(len(resolution)),
            "above_chance": int(resolution["above_chance"].sum()),
        }
    return AnalysisResult(
        curves,
        emergence,
        verdicts,
        insufficient,
        samples,
        summary,
        predictions,
        fits,
        lengths,
        resolution,
        evidence,
        settings,
    )


def _prediction_summary(predictions: pd.DataFrame) -> dict[str, Any]:
    rows = predictions[predictions["row_kind"] == RowKind.MODEL.value]
    if rows.empty:
        return {"n_models": 0}
    consistent = rows["consistent"].dropna().astype(bool)
    return {
        "n_models": int(len(rows)),
        "consistent_share": float(consistent.mean()) if len(consistent) else None,
        "median_abs_error": float(rows["prediction_error"].abs().median()),
    }


def _summary(
    inputs: Inputs,
    settings: AnalysisSettings,
    curves: pd.DataFrame,
    emergence: pd.DataFrame,
    verdicts: pd.DataFrame,
    insufficient: pd.DataFrame,
    unknown: list[str],
) -> dict[str, Any]:
    counts = {v.value: int((verdicts["verdict"] == v.value).sum()) for v in VERDICT_ORDER}
    finite = emergence["emergence_score"].replace([np.inf, -np.inf], np.nan)
    return {
        "mirage_version": metadata.version("mirage"),
        "inputs": list(inputs.sources),
        "notes": list(inputs.notes),
        "scale_column": inputs.scale_column,
        "settings": settings.as_dict(),
        "n_families": int(curves["family"].nunique()),
        "n_models": int(curves[["family", "model"]].drop_duplicates().shape[0]),
        "n_tasks": int(curves["task"].nunique()),
        "n_metrics": int(curves["metric"].nunique()),
        "n_curves": int(curves.groupby(curve_id(settings), dropna=False).ngroups),
        "has_records": inputs.records is not None,
        "n_records": int(inputs.records.num_rows) if inputs.records is not None else 0,
        "verdict_counts": counts,
        "flat_then_jump_curves": int(emergence["flat_then_jump"].sum()),
        "max_finite_emergence_score": float(finite.abs().max()) if finite.notna().any() else None,
        "unknown_metrics": unknown,
        "insufficient_curves": insufficient.assign(shots=insufficient["shots"].astype(object)).to_dict(orient="records")
        if len(insufficient) < 200
        else f"{len(insufficient)} curves",
    }
