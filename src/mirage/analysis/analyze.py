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

from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import MirageInputError
from ..schema.record_source import RecordSource
from ..schema.results import AnalysisResult, Inputs
from ..schema.settings import AnalysisSettings
from ..schema.until_pass import has_until_pass
from ..schema.vocab import VERDICT_ORDER, RowKind
from .curves import combine_curves, curve_id, curves_from_scores
from .emergence import emergence_table
from .pass_rates import pass_rate_curves, pass_rate_table
from .resolution import resolution_from_stats
from .stream import SamplesSink, analyse_records
from .verdicts import verdicts_table


def run_analysis(
    inputs: Inputs,
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    on_samples: SamplesSink | None = None,
    on_unit: Callable[[str, str, int], None] | None = None,
) -> AnalysisResult:
    """Compute curves, emergence scores and verdicts (no files written).

    Records are analysed one (family, task) at a time (:mod:`mirage.analysis.stream`). With
    ``on_samples`` each unit's per-sample metrics go there (the streaming writer of
    ``samples.parquet``) and the result holds none, so memory stays bounded; without it the
    result holds them all, in the records' order. ``on_unit(family, task, n_records)`` reports
    progress.

    >>> from mirage import bundled_path, read_inputs
    >>> inputs = read_inputs([bundled_path("pythia_scaling.csv")], filters={"task": "lambada_openai", "shots": "0"})
    >>> result = run_analysis(inputs, AnalysisSettings(bootstrap=50))
    >>> result.verdicts[["family", "discontinuous_metric", "continuous_metric", "verdict"]].values.tolist()
    [['Pythia', 'acc', 'ppl', 'no apparent emergence'], ['Pythia-deduped', 'acc', 'ppl', 'no apparent emergence']]
    """
    score_curves, unknown = curves_from_scores(inputs.scores, settings) if inputs.scores is not None else (None, [])
    part = None
    # until-pass records (mirage eval --until-pass) are read whole: their pass rates pool every
    # item of a model and compare with its greedy exact match, so the samples are kept for them
    until_pass = inputs.records is not None and has_until_pass(_record_columns(inputs.records))
    if inputs.records is not None:
        if settings.curve_by:
            raise MirageInputError("applies to score tables; split records with --filter instead", "--curve-by")
        part = analyse_records(
            inputs.records,
            settings,
            score_curves=score_curves,
            decide=True,
            on_samples=on_samples,
            keep_samples=on_samples is None or until_pass,
            on_unit=on_unit,
        )
    curves = combine_curves(part.curves if part is not None else None, score_curves, settings)
    pass_rates = None
    if until_pass and part is not None and inputs.records is not None:
        pass_rates = pass_rate_table(_record_table(inputs.records), part.samples, settings)
        if on_samples is not None:
            part.samples = None  # written already; kept only for the pass rates
    if pass_rates is not None:  # sampled until a pass: the pooled rate is a curve of its own
        curves = _sorted_curves(pd.concat([curves, pass_rate_curves(pass_rates, settings)], ignore_index=True))
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values to analyse")
    emergence, insufficient = emergence_table(curves, tuple(settings.curve_by))
    verdicts, evidence = verdicts_table(
        curves, None, settings.verdict_settings(), decided=part.verdicts if part is not None else None
    )
    n_records = part.n_records if part is not None else 0
    summary = _summary(inputs, settings, curves, emergence, verdicts, insufficient, unknown, n_records)
    predictions = fits = lengths = None
    if part is not None and part.predictions is not None:
        predictions, fits, lengths = part.predictions, part.prediction_fits, part.lengths
        summary["predictions"] = _prediction_summary(predictions)
    if pass_rates is not None:
        agree = pass_rates["agree"].dropna().astype(bool)
        summary["pass_rates"] = {
            "models": int(len(pass_rates)),
            "with_prediction": int(len(agree)),
            "prediction_in_interval": int(agree.sum()),
        }
    resolution = None
    if part is not None:
        stats = part.resolution_stats if part.resolution_stats is not None else _no_stats()
        resolution = resolution_from_stats(curves, stats, predictions, settings)
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
        part.samples if part is not None else None,
        summary,
        predictions,
        fits,
        lengths,
        resolution,
        evidence,
        settings,
        pass_rates,
    )


def _record_columns(records: pa.Table | RecordSource) -> list[str]:
    """The column names of records, however they are held."""
    if isinstance(records, RecordSource):
        return sorted({c for f in records.fragments for c in f.column_names})
    return list(records.column_names)


def _record_table(records: pa.Table | RecordSource) -> pa.Table:
    """Records as one table in memory."""
    return records.to_table() if isinstance(records, RecordSource) else records


def _sorted_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Curves in the order of ``curves.csv`` (as :func:`mirage.analysis.curves.collect_curves` sorts them)."""
    order = ["family", "task", "shots", "metric", "scale", "model"]
    return curves.sort_values(order, kind="stable").reset_index(drop=True)


def _no_stats() -> pd.DataFrame:
    """The per-model resolution numbers of an input without samples."""
    return pd.DataFrame(columns=["family", "task", "shots", "model", "mean_length", "chance_mc"])


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
    n_records: int = 0,
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
        "n_records": int(n_records),
        "verdict_counts": counts,
        "flat_then_jump_curves": int(emergence["flat_then_jump"].sum()),
        "max_finite_emergence_score": float(finite.abs().max()) if finite.notna().any() else None,
        "unknown_metrics": unknown,
        "insufficient_curves": insufficient.assign(shots=insufficient["shots"].astype(object)).to_dict(orient="records")
        if len(insufficient) < 200
        else f"{len(insufficient)} curves",
    }
