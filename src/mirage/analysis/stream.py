"""The record path of ``mirage analyze`` and ``mirage meta``, one (family, task) at a time.

Records arrive unit by unit (:meth:`mirage.schema.record_source.RecordSource.iter_units`); each
unit's per-sample metrics are computed, split into its (family, task, shots) groups, and
everything that needs the samples is done while they are in memory: the group's curve points and
their bootstrap, its verdicts (with the score-table curves of the same group), its exact-match
predictions and target-length rows, and the few per-model numbers of the resolution table. The
samples are then handed to ``on_samples`` (the writer of ``samples.parquet``) or kept, and let go.
Peak memory is a few units' records and samples (the one analysed, the next one being measured,
the previous one's decisions), whatever the input size.

A unit's decisions (verdicts, predictions, lengths) run on a worker thread while the next unit's
curves are computed, and the next unit's per-sample metrics and bootstrap draws on two more.

The results are those of the whole-table computation, bit for bit: per-sample metrics are
computed record by record; a group's bootstrap is seeded by its place among all groups; rows are
put in the order the whole-table code produced them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import MirageInputError
from ..metrics import METRICS, compute_sample_metrics
from ..schema.record_source import RecordSource, UnitKey, UnitRecords, as_record_source, check_unit
from ..schema.records import SUM_COLUMN
from ..schema.settings import AnalysisSettings, VerdictSettings
from ..schema.tables import set_shots
from ..stats import CountsAhead
from ..stats.intervals import one_blas_thread
from .curve_points import bootstrap_counts_ahead, curve_frame, record_group_curves
from .predictions import length_frame, length_rows, prediction_frames, prediction_rows
from .resolution import resolution_model_stats
from .verdicts import GroupKey, VerdictEntry, group_key, record_group_verdicts, verdict_keys

SamplesSink = Callable[[pd.DataFrame], None]


@dataclass
class RecordPart:
    """What the record path computed: the record curves, the groups, and (on request) the
    samples, the verdicts of record groups, predictions, lengths and per-model resolution numbers."""

    curves: pd.DataFrame
    groups: list[GroupKey]
    n_records: int
    samples: pd.DataFrame | None = None
    verdicts: dict[GroupKey, list[VerdictEntry]] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    prediction_fits: pd.DataFrame | None = None
    lengths: pd.DataFrame | None = None
    resolution_stats: pd.DataFrame | None = None
    sample_columns: list[str] = field(default_factory=list)


def analyse_records(
    records: pa.Table | RecordSource,
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    score_curves: pd.DataFrame | None = None,
    decide: bool = False,
    on_samples: SamplesSink | None = None,
    keep_samples: bool = False,
    on_unit: Callable[[str, str, int], None] | None = None,
) -> RecordPart:
    """Curves (and, with ``decide``, verdicts, predictions, lengths, resolution numbers) of every
    record group, one (family, task) unit at a time.

    ``score_curves``: the score-table curves, whose groups' verdicts need them beside the record
    curves; ``on_samples``: called with each unit's per-sample metrics (in unit order, on a
    worker thread, one call at a time, every call finished when this returns);
    ``keep_samples``: also return them all, in the records' input order; ``on_unit(family, task,
    n_records)`` after each unit (progress).
    """
    source = as_record_source(records)
    assert source is not None
    present = source.present
    chosen = _chosen_metrics(source, settings)
    order = _group_order(source)
    has_shots = not all(pd.isna(k[2]) for k in order)
    vsettings = settings.verdict_settings()
    score_groups = _score_groups(score_curves, vsettings) if decide else {}
    curve_rows: list[dict[str, Any]] = []
    part = RecordPart(curves=pd.DataFrame(), groups=list(order), n_records=source.num_rows)
    kept: list[tuple[pd.DataFrame, np.ndarray]] = []
    pred_rows: list[dict[str, Any]] = []
    fit_rows: list[dict[str, Any]] = []
    len_rows: list[dict[str, Any]] = []
    stats: list[pd.DataFrame] = []
    predicting = False
    unit_groups: dict[UnitKey, list[int]] = {}
    for k, o in order.items():
        unit_groups.setdefault((str(k[0]), str(k[1])), []).append(o)
    # worker threads, one unit ahead at most: the next unit's per-sample metrics and bootstrap
    # draws are computed while a unit is analysed, and each unit's samples are handed to
    # on_samples while the next is (NumPy, Arrow and rapidfuzz work without the interpreter lock)
    handed: Future[None] | None = None
    # one BLAS thread for the whole pass (each bootstrap product asks for it, on two threads at
    # once): set here, on the calling thread, and restored here, when every worker is done
    with (
        one_blas_thread(),
        ThreadPoolExecutor(max_workers=1) as draws,
        ThreadPoolExecutor(max_workers=1) as measures,
        ThreadPoolExecutor(max_workers=1) as sink,
        ThreadPoolExecutor(max_workers=1) as decisions,
    ):

        def measure(unit: UnitRecords) -> pd.DataFrame:
            if unit.n_pieces > 1:
                check_unit(unit)
            samples = compute_sample_metrics(unit.table, chosen, settings.answer_regex, present=present)
            set_shots(samples)
            return samples

        def started(unit: UnitRecords) -> tuple[UnitRecords, CountsAhead | None, Future[pd.DataFrame]]:
            return unit, _draw_ahead(unit, unit_groups, settings, draws), measures.submit(measure, unit)

        def decided(done: list[Future[_GroupDecision]]) -> None:
            for job in done:  # in submission order: the rows keep the whole-table order
                d = job.result()
                if d.verdicts is not None:
                    part.verdicts[d.key] = d.verdicts
                pred_rows.extend(d.predictions)
                fit_rows.extend(d.fits)
                len_rows.extend(d.lengths)
                if d.stats is not None:
                    stats.append(d.stats)

        # a unit's decisions (verdicts, predictions, lengths) run on their own thread while the
        # next unit's curves are computed; a unit's decisions are gathered after the next unit's curves
        waiting: list[Future[_GroupDecision]] = []
        for unit, ahead, samples in _one_ahead(source.iter_units(), started):
            part.sample_columns = list(samples.columns)
            predicting = decide and _predicts(samples)
            jobs: list[Future[_GroupDecision]] = []
            for shots, group in samples.groupby("shots", sort=True, dropna=False):
                key = group_key((unit.family, unit.task, shots))
                rows = record_group_curves(unit.family, unit.task, key[2], group, settings, order[key], ahead)
                curve_rows += rows
                if decide:
                    job = decisions.submit(
                        _decide_group,
                        (unit.family, unit.task),
                        key,
                        rows,
                        group,
                        score_groups.get(key),
                        settings,
                        vsettings,
                        predicting,
                        has_shots,
                    )
                    jobs.append(job)
            decided(waiting)
            waiting = jobs
            if on_samples is not None:
                if handed is not None:
                    handed.result()  # the previous unit's, in order; its error raised here
                handed = sink.submit(on_samples, samples)
            if keep_samples:
                kept.append((samples, unit.positions))
            if on_unit is not None:
                on_unit(unit.family, unit.task, unit.table.num_rows)
        decided(waiting)
        if handed is not None:
            handed.result()
    part.curves = curve_frame(curve_rows)
    if keep_samples:
        part.samples = _in_input_order(kept)
    if decide and stats:
        part.resolution_stats = pd.concat(stats, ignore_index=True)
    if predicting or pred_rows or fit_rows:
        preds = prediction_frames(pred_rows, fit_rows, has_shots)
        part.predictions, part.prediction_fits = preds.predictions, preds.fits
        part.lengths = length_frame(len_rows, has_shots)
    return part


@dataclass
class _GroupDecision:
    """What one group's decisions add to the record part."""

    key: GroupKey
    verdicts: list[VerdictEntry] | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    fits: list[dict[str, Any]] = field(default_factory=list)
    lengths: list[dict[str, Any]] = field(default_factory=list)
    stats: pd.DataFrame | None = None


def _decide_group(
    unit: tuple[Any, Any],
    key: GroupKey,
    rows: list[dict[str, Any]],
    group: pd.DataFrame,
    scores: pd.DataFrame | None,
    settings: AnalysisSettings,
    vsettings: VerdictSettings,
    predicting: bool,
    has_shots: bool,
) -> _GroupDecision:
    """One group's verdicts (with the score-table curves ``scores`` of the same group), exact-match
    predictions, target-length rows and per-model resolution numbers."""
    family, task = unit
    out = _GroupDecision(key)
    g = _group_curves(rows, scores)
    if len(g):
        out.verdicts = record_group_verdicts(g, group, vsettings)
    if predicting:
        s = group[[c for c in _PREDICTION_COLUMNS if c in group.columns and (has_shots or c != "shots")]]
        s = s[s["exact_match"].notna()]
        if len(s):
            base: dict[str, Any] = {"family": family, "task": task}
            if has_shots:
                base["shots"] = key[2]
            out.predictions, out.fits = prediction_rows(
                base, s, n_boot=max(settings.bootstrap, 100), seed=settings.seed, level=settings.level
            )
            for model, m in s.groupby("model", sort=True, dropna=False):
                out.lengths += length_rows(dict(base, model=model), m, level=settings.level)
    out.stats = resolution_model_stats(group)
    return out


def _one_ahead(
    units: Iterator[UnitRecords],
    start: Callable[[UnitRecords], tuple[UnitRecords, CountsAhead | None, Future[pd.DataFrame]]],
) -> Iterator[tuple[UnitRecords, CountsAhead | None, pd.DataFrame]]:
    """Each unit with its drawn counts and per-sample metrics, in order; the next unit's work is
    started (``start``) before this one is handed out, so it runs while this one is analysed."""
    pending = None
    try:
        for unit in units:
            job = start(unit)
            if pending is not None:
                yield pending[0], pending[1], pending[2].result()
            pending = job
        if pending is not None:
            yield pending[0], pending[1], pending[2].result()
    finally:
        close = getattr(units, "close", None)
        if close is not None:
            close()


def _draw_ahead(
    unit: UnitRecords, unit_groups: dict[UnitKey, list[int]], settings: AnalysisSettings, pool: Executor
) -> CountsAhead | None:
    """The bootstrap counts of a unit that is one group (one shots value), started on ``pool``:
    the group's items are its distinct sample ids (a guess that the bootstrap checks)."""
    groups = unit_groups.get((str(unit.family), str(unit.task)), [])
    if len(groups) != 1 or unit.table.num_rows == 0:
        return None
    n_items = int(pc.count_distinct(unit.table.column("sample_id"), mode="all").as_py())
    return bootstrap_counts_ahead(n_items, settings, groups[0], pool)


# what the exact-match predictions and the target-length rows read of a group's samples
_PREDICTION_COLUMNS = (
    "family",
    "model",
    "scale",
    "task",
    "sample_id",
    "shots",
    "target_length",
    "exact_match",
    "target_mean_logprob",
    "token_edit_distance",
)


def _chosen_metrics(source: RecordSource, settings: AnalysisSettings) -> list[str] | None:
    """The record metrics of the whole input (the same for every unit)."""
    names = settings.metrics
    if names:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise MirageInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}", "--metrics")
        return list(names)
    present = source.present

    def has(column: str) -> bool:
        return column in present or (column == "target_logprobs" and SUM_COLUMN in present)

    return [n for n, m in METRICS.items() if all(has(c) for c in m.requires)]


def _group_order(source: RecordSource) -> dict[GroupKey, int]:
    """Every (family, task, shots) group's place in sorted order (shots missing last)."""
    keys = source.keys()[["family", "task", "shots"]].drop_duplicates(ignore_index=True)
    set_shots(keys)
    ordinal = keys.groupby(["family", "task", "shots"], sort=True, dropna=False).ngroup().to_numpy()
    return {group_key(k): int(o) for k, o in zip(keys.itertuples(index=False, name=None), ordinal)}


def _score_groups(score_curves: pd.DataFrame | None, vsettings: Any) -> dict[GroupKey, pd.DataFrame]:
    """Score-table curves by verdict group."""
    if score_curves is None or score_curves.empty:
        return {}
    keys = verdict_keys(vsettings)
    return {
        group_key(k if isinstance(k, tuple) else (k,)): g
        for k, g in score_curves.groupby(keys, sort=False, dropna=False)
    }


def _group_curves(rows: list[dict[str, Any]], scores: pd.DataFrame | None) -> pd.DataFrame:
    """One group's curves as the whole curves table holds them: record points, then score points."""
    record = curve_frame(rows)
    if scores is None:
        return record
    filled = [p for p in (record, scores) if not p.empty]
    return pd.concat(filled, ignore_index=True, sort=False) if filled else record


def _predicts(samples: pd.DataFrame) -> bool:
    """Exact match and a continuous metric to predict it from (what ``run_analysis`` asks)."""
    return "exact_match" in samples.columns and bool(
        samples.columns.intersection(["target_mean_logprob", "token_edit_distance"]).size
    )


def _in_input_order(kept: list[tuple[pd.DataFrame, np.ndarray]]) -> pd.DataFrame:
    """Every unit's samples, back in the records' input order."""
    if not kept:
        return pd.DataFrame()
    frame = pd.concat([s for s, _ in kept], ignore_index=True) if len(kept) > 1 else kept[0][0]
    positions = np.concatenate([p for _, p in kept])
    if np.all(positions[1:] > positions[:-1]):
        return frame.reset_index(drop=True)
    return frame.iloc[np.argsort(positions, kind="stable")].reset_index(drop=True)


__all__ = ["RecordPart", "SamplesSink", "UnitRecords", "analyse_records"]
