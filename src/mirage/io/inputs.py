"""Reading inputs: score tables, results and sample logs of the usual tools, and sample records.

``read_inputs`` detects each file by its content, so ``mirage analyze`` and ``mirage meta`` take
any mix of them (files or directories, read recursively). Everything is validated before
anything is written; problems raise :class:`~mirage.errors.MirageInputError` naming the file
(and the row, for a bad value).

=============================================  ===========================================
input                                          becomes
=============================================  ===========================================
long score table (CSV/Parquet)                 score rows
lm-eval ``results_*.json`` (old and 0.4.x)     score rows
lm-eval ``samples_*.jsonl`` (0.4.x)            records (:mod:`mirage.io.lm_eval_samples`)
Inspect ``.eval`` / ``.json`` logs             records (:mod:`mirage.io.inspect_logs`)
BIG-bench ``scores_*.json``                    score rows (:mod:`mirage.io.bigbench_results`)
BIG-bench ``full-log_*.json``                  records (:mod:`mirage.io.bigbench_logs`)
record files (Parquet/JSONL)                   records (:mod:`mirage.io.records`)
=============================================  ===========================================

Long score table (one row per family, model, task, metric[, shots]):
    required ``family, model, task, metric, value`` and a scale column (``--scale``, default
    ``params``); optional ``stderr`` (a number >= 0), ``shots`` (an integer >= 0, or empty when
    not applicable), ``step``, ``n_samples`` (a positive integer), ``metric_kind``
    (discontinuous, nonlinear or linear), ``higher_is_better``.

``--filter COL=VALUE`` is applied to each file before its values are checked, so rows it drops
need not be valid (a training table whose other rows lack a ``step``, say).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import MirageInputError
from ..metrics import METRICS, facts
from ..schema.record_source import RecordFragment, RecordSource, table_fragment
from ..schema.records import looks_like_records, normalize_records
from ..schema.results import Inputs
from ..schema.tables import ANALYSIS_TABLES, MANIFEST_FILE, META_TABLES, SUMMARY_FILE, THEORY_TABLES
from .bigbench_logs import read_bigbench_full_log
from .bigbench_results import (
    family_axes,
    is_full_log,
    looks_like_bigbench_results,
    read_bigbench_results,
    scale_bigbench,
)
from .inspect_logs import looks_like_inspect_log, read_inspect_log
from .lm_eval_results import lm_eval_rows
from .lm_eval_samples import looks_like_lm_eval_samples, read_lm_eval_samples, sniff_jsonl
from .models import ScaleTable, Tokenizers, read_scale_table
from .record_files import parquet_record_fragments, parquet_records_schema
from .scores import DEFAULT_SCALE, SCORE_REQUIRED, normalize_score_table, per_model_checkpoints, validate_scores
from .tables import load_json, read_raw_table

INPUT_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".eval")
# files mirage itself writes next to its inputs (analyze, theory, meta, eval): derived results,
# not inputs, so a directory scan passes over them (a file named explicitly is still read)
MIRAGE_OUTPUTS = frozenset(
    {spec.file for spec in ANALYSIS_TABLES + THEORY_TABLES + META_TABLES} | {SUMMARY_FILE, MANIFEST_FILE}
)


@dataclass(frozen=True)
class ReadOptions:
    """The reading options every reader shares (the CLI's --scale, --family, --scale-from,
    --tokenizer and --filter)."""

    scale: str | None = None
    family: str | None = None
    scale_from: str | None = None
    scale_table: ScaleTable | None = None
    tokenizers: Tokenizers = field(default_factory=Tokenizers)
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def scale_or_default(self) -> str:
        """The x axis asked for, else parameters."""
        return self.scale or DEFAULT_SCALE

    def record_reader_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the per-sample log readers (Inspect, lm-eval samples)."""
        return dict(
            family=self.family,
            scale=self.scale_or_default,
            scale_from=self.scale_from,
            scale_table=self.scale_table,
            tokenizers=self.tokenizers,
        )


# ----------------------------------------------------------------------------- entry point


def read_inputs(
    paths: Sequence[str | Path],
    *,
    scale: str | None = None,
    filters: dict[str, str] | Sequence[str] | None = None,
    family: str | None = None,
    scale_from: str | None = None,
    tokenizer: str | None = None,
    exclude: Iterable[str | Path] = (),
    curve_by: Sequence[str] = (),
) -> Inputs:
    """Read and validate every input; return one score table and one record table.

    ``scale`` is the x axis (a column name; default ``params``, and for BIG-bench results
    BIG-bench's own flop-matched non-embedding parameters). ``scale_from`` gives scales the
    files lack (``config``, ``name``, a CSV or a family YAML); ``tokenizer`` the tokens of
    text-only logs (a tokenizer directory, hub id or family YAML; default characters).
    Files found by scanning a directory that are none of the known kinds are skipped with a
    note (``Inputs.notes``); files named explicitly must be readable. ``exclude`` lists files
    not to read. ``curve_by``: score-table columns that are part of a curve's identity (rows
    differing only there are not duplicates).

    Training checkpoints: when the scale column (e.g. ``step``) varies within a model, each model
    becomes its own curve over its checkpoints (family ``family/model``, one point per scale
    value), and a note says so.

    >>> from mirage import bundled_path
    >>> inputs = read_inputs([bundled_path("pythia_scaling.csv")], filters={"task": "lambada_openai"})
    >>> inputs.scores.groupby("family")["model"].nunique().to_dict()
    {'Pythia': 8, 'Pythia-deduped': 8}
    >>> sorted(inputs.scores["metric"].unique())
    ['acc', 'ppl']
    """
    if not paths:
        raise MirageInputError("no input given")
    opts = ReadOptions(
        scale=scale,
        family=family,
        scale_from=scale_from,
        scale_table=read_scale_table(scale_from) if scale_from not in (None, "config", "name") else None,
        tokenizers=Tokenizers(tokenizer),
        filters=parse_filters(filters),
    )
    score_frames: list[pd.DataFrame] = []
    record_tables: list[pa.Table] = []
    bigbench: list[Path] = []
    sources: list[str] = []
    notes: list[str] = []
    skip = {Path(p).resolve() for p in exclude}
    filter_columns_seen: set[str] = set()
    axes_seen: list[str] = []  # the x axes in use (BIG-bench chooses one per family)
    lazy: list[tuple[Path, pa.Schema]] = []  # Parquet record files, read a row group at a time
    for path, found_in_dir in expand_inputs(paths):
        if path.resolve() in skip:
            continue
        schema = parquet_records_schema(path) if path.suffix.lower() == ".parquet" else None
        if schema is not None:
            sources.append(str(path))
            filter_columns_seen |= set(schema.names)
            lazy.append((path, schema))
            axes_seen.append(opts.scale_or_default)
            continue
        try:
            kind, obj, file_notes = _read_one(path, opts)
        except MirageInputError as exc:
            # a side file in a directory (e.g. a parameter table) is skipped, not fatal
            if found_in_dir and "not a score table" in str(exc):
                notes.append(f"skipped {path}: none of the known inputs (score table, results, sample log, records)")
                continue
            raise
        sources.append(str(path))
        notes.extend(file_notes)
        if kind == "bigbench":
            bigbench.append(path)
            continue
        if isinstance(obj, pa.Table) and obj.num_rows == 0:
            continue  # e.g. a BIG-bench full log of a model without the chosen parameter count
        filter_columns_seen |= set(obj.column_names if isinstance(obj, pa.Table) else obj.columns)
        obj = _filter_file(obj, opts.filters)
        if obj is None:
            continue
        if kind == "records":
            record_tables.append(_finish_records(obj, opts, str(path)))
            if "bigbench_log" not in obj.column_names:
                axes_seen.append(opts.scale_or_default)
        else:
            axes_seen.append(opts.scale_or_default)
            score_frames.append(normalize_score_table(obj, str(path), scale=opts.scale_or_default))
    scale_column = opts.scale_or_default
    if bigbench:
        frame = read_bigbench_results(bigbench, notes)
        filter_columns_seen |= set(frame.columns)
        src = str(bigbench[0]) if len(bigbench) == 1 else f"{bigbench[0]} (+{len(bigbench) - 1} BIG-bench files)"
        frame = _filter_file(frame, opts.filters)
        if frame is not None:
            frame, bb_notes = scale_bigbench(frame, scale, src)
            notes.extend(bb_notes)
            score_frames.append(normalize_score_table(frame, src, scale="scale"))
            axes_seen.extend(frame["x_axis"].unique())
    missing_filters = [c for c in opts.filters if c not in filter_columns_seen]
    if missing_filters:
        raise MirageInputError(f"no column {missing_filters[0]!r} in any input to filter on", "--filter")
    if not sources:
        raise MirageInputError("no score table, results, sample log or records among the inputs")
    if opts.filters and not score_frames and not record_tables and not lazy:
        raise MirageInputError(f"no rows left after --filter {opts.filters}", "--filter")
    scores = None
    if score_frames:
        scores = pd.concat(score_frames, ignore_index=True, sort=False)
        scores, checkpoint_note = per_model_checkpoints(scores, opts.scale_or_default)
        if checkpoint_note:
            notes.append(checkpoint_note)
        scores = validate_scores(scores, _describe_sources(scores["source"].unique()), curve_by=curve_by)
    records = None
    if record_tables:
        try:
            records = pa.concat_tables(record_tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MirageInputError(f"record inputs do not share one schema: {exc}") from None
        if scale is None and "bigbench_log" in records.column_names:
            records = _bigbench_records_axis(records, notes, axes_seen)
        records = normalize_records(records, "records")
    if lazy:
        records = _lazy_records(records, lazy, opts)
        if records is None and opts.filters and not score_frames:
            raise MirageInputError(f"no rows left after --filter {opts.filters}", "--filter")
    if scores is not None and records is not None:
        scores, note = _prefer_records(scores, records)
        if note:
            notes.append(note)
    _check_enough_models(scores, records)
    if scale is None:
        used = list(dict.fromkeys(axes_seen)) or [DEFAULT_SCALE]
        scale_column = used[0] if len(used) == 1 else " / ".join(used) + " (per family; see notes)"
    return Inputs(
        scores=scores,
        records=records,
        sources=tuple(sources),
        scale_column=scale_column,
        notes=tuple(dict.fromkeys(notes)),
    )


def inputs_from_frame(
    frame: pd.DataFrame,
    *,
    scale: str | None = None,
    filters: dict[str, str] | Sequence[str] | None = None,
    curve_by: Sequence[str] = (),
    source: str = "DataFrame",
) -> Inputs:
    """The :class:`~mirage.schema.results.Inputs` of a pandas DataFrame, checked as a file would be.

    ``frame`` is either a long score table (``family, model, task, metric, value`` and a scale
    column, optional ``stderr``, ``shots``, ``n_samples``, ``metric_kind``, ``higher_is_better``)
    or sample records (the record schema: ``family, model, scale, task, sample_id, target`` and
    outputs or log-probabilities); which one is told from its columns. ``scale`` names the x axis
    column (default ``params``), ``filters`` keep rows with ``COL=VALUE``, ``curve_by`` as in
    :func:`read_inputs`; ``source`` is the name errors give.

    >>> import pandas as pd
    >>> from mirage import AnalysisSettings, inputs_from_frame, run_analysis
    >>> scores = pd.DataFrame({
    ...     "family": "pythia", "model": ["70m", "160m", "410m", "1b"],
    ...     "params": [7e7, 1.6e8, 4.1e8, 1e9], "task": "lambada", "metric": "acc",
    ...     "value": [0.10, 0.22, 0.41, 0.56], "n_samples": 5153,
    ... })
    >>> result = run_analysis(inputs_from_frame(scores), AnalysisSettings(bootstrap=0))
    >>> print(result.curves[["model", "value", "ci_method"]].head(2).to_string(index=False))
    model  value ci_method
      70m   0.10    wilson
     160m   0.22    wilson
    >>> inputs_from_frame(scores.drop(columns="value"))
    Traceback (most recent call last):
    ...
    mirage.errors.MirageInputError: DataFrame: missing column(s) 'value' for a score table
    """
    if not isinstance(frame, pd.DataFrame):
        raise MirageInputError(f"expected a pandas DataFrame, got {type(frame).__name__}", source)
    opts = ReadOptions(scale=scale, filters=parse_filters(filters))
    missing_filters = [c for c in opts.filters if c not in frame.columns]
    if missing_filters:
        raise MirageInputError(f"no column {missing_filters[0]!r} to filter on", "filters")
    if looks_like_records(map(str, frame.columns)):
        table = _filter_file(normalize_records(frame, source), opts.filters)
        if table is None:
            raise MirageInputError(f"no rows left after filters {opts.filters}", "filters")
        records = _finish_records(table, opts, source)
        _check_enough_models(None, records)
        return Inputs(scores=None, records=records, sources=(source,), scale_column=opts.scale_or_default)
    kept = _filter_file(frame, opts.filters)
    if kept is None:
        raise MirageInputError(f"no rows left after filters {opts.filters}", "filters")
    scores = normalize_score_table(kept, source, scale=opts.scale_or_default)
    scores, note = per_model_checkpoints(scores, opts.scale_or_default)
    scores = validate_scores(scores, source, curve_by=curve_by)
    _check_enough_models(scores, None)
    return Inputs(
        scores=scores,
        records=None,
        sources=(source,),
        scale_column=opts.scale_or_default,
        notes=(note,) if note else (),
    )


def _lazy_records(
    records: pa.Table | None, lazy: list[tuple[Path, pa.Schema]], opts: ReadOptions
) -> RecordSource | pa.Table | None:
    """Records of the Parquet files as fragments read on demand, after those read whole (which come
    first in input order); checked across files: one scale per model."""
    fragments: list[RecordFragment] = []
    offset = 0
    if records is not None:
        fragments.append(table_fragment(records, "records"))
        offset = records.num_rows
    for path, schema in lazy:
        found = parquet_record_fragments(path, schema, opts.scale_or_default, opts.filters, offset)
        fragments += found
        offset += sum(f.num_rows for f in found)
    if not fragments:
        return records
    source = RecordSource(tuple(fragments))
    per_model = source.keys()[["family", "model", "scale"]].drop_duplicates()
    bad = ~np.isfinite(per_model["scale"].to_numpy(float)) | (per_model["scale"].to_numpy(float) <= 0)
    if bad.any():
        raise MirageInputError(
            f"column 'scale' must be finite and positive; model {per_model[bad].iloc[0]['model']!r} has "
            f"{per_model[bad].iloc[0]['scale']!r}",
            "records",
        )
    clash = per_model.duplicated(["family", "model"])
    if clash.any():
        row = per_model[clash].iloc[0]
        raise MirageInputError(f"model {row['model']!r} of family {row['family']!r} has more than one scale", "records")
    return source


def _record_keys(records: pa.Table | RecordSource, columns: list[str]) -> pd.DataFrame:
    """Distinct key columns (family, model, task, shots) of the records, however they are held."""
    if isinstance(records, RecordSource):
        keys = records.keys()
        return keys[[c for c in columns if c in keys.columns]].drop_duplicates()
    return records.select([c for c in columns if c in records.column_names]).to_pandas().drop_duplicates()


def _bigbench_records_axis(records: pa.Table, notes: list[str], axes_seen: list[str]) -> pa.Table:
    """Records from BIG-bench full logs get the x axis their family's score files get."""
    cols = ["family", "params", "non_embedding_params", "flop_matched_non_embedding_params", "bigbench_log", "scale"]
    frame = records.select(cols).to_pandas()
    mask = frame["bigbench_log"].fillna(False).astype(bool)
    axes = family_axes(frame[mask], notes)
    axes_seen.extend(axes.values())
    scale = frame["scale"].to_numpy(dtype=float).copy()
    for i in np.flatnonzero(mask.to_numpy()):
        scale[i] = frame[axes[str(frame["family"].iloc[i])]].iloc[i]
    index = records.column_names.index("scale")
    return records.set_column(index, "scale", pa.array(scale, type=pa.float64()))


# metrics whose record computation is the results file's own definition (lm-eval's
# brier_score and BIG-bench's multiple_choice_grade: softmax / argmax over the option scores)


def _same_as_tool(metric: str) -> bool:
    entry = facts(metric)
    return entry is not None and entry.same_as_tool


def _prefer_records(scores: pd.DataFrame, records: pa.Table | RecordSource) -> tuple[pd.DataFrame | None, str | None]:
    """Score rows of a metric that the records of the same run compute too.

    Where mirage's definition is the tool's own (the metric's ``same_as_tool`` fact), the row gives way to
    the records, which carry per-sample intervals; otherwise (lm-eval's ``exact_match`` does not
    strip whitespace, mirage's does) the reported number is kept as ``metric[reported]``.
    Either way no curve point comes from two inputs."""

    def keys(frame: pd.DataFrame) -> pd.Series:
        shots = (
            frame["shots"].astype("Int64").astype(str)
            if "shots" in frame.columns
            else pd.Series("<NA>", index=frame.index)
        )
        return (
            frame["family"].astype(str)
            + "\x1f"
            + frame["model"].astype(str)
            + "\x1f"
            + frame["task"].astype(str)
            + "\x1f"
            + shots
        )

    rec = _record_keys(records, ["family", "model", "task", "shots"])
    have = set(keys(rec))
    clash = scores["metric"].isin(list(METRICS)) & keys(scores).isin(have)
    if not clash.any():
        return scores, None
    same = clash & scores["metric"].map(_same_as_tool)
    renamed = clash & ~same
    parts = []
    if same.any():
        parts.append(
            f"{int(same.sum())} score row(s) ({', '.join(sorted(scores.loc[same, 'metric'].unique()))}) are "
            "computed from the per-sample records of the same runs instead of taken from the results files"
        )
    scores = scores.copy()
    if renamed.any():
        names = sorted(scores.loc[renamed, "metric"].unique())
        scores.loc[renamed, "metric"] = scores.loc[renamed, "metric"] + "[reported]"
        parts.append(
            f"reported {', '.join(names)} kept as {', '.join(n + '[reported]' for n in names)} beside "
            "mirage's own computation from the per-sample records (definitions may differ, e.g. whitespace)"
        )
    kept = scores[~same].reset_index(drop=True)
    return (kept if len(kept) else None), "; ".join(parts)


def _filter_file(obj: pd.DataFrame | pa.Table, filters: dict[str, str]) -> pd.DataFrame | pa.Table | None:
    """Rows of one file that pass ``--filter``; None when none do. A file without a filter's
    column has no row that matches it."""
    if not filters:
        return obj
    if isinstance(obj, pa.Table):
        if any(col not in obj.column_names for col in filters):
            return None
        for col, val in filters.items():
            column = obj.column(col)
            try:
                text = column.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                text = pa.array([None if v is None else str(v) for v in column.to_pylist()], type=pa.string())
            obj = obj.filter(pc.fill_null(pc.equal(text, val), False))
        return obj if obj.num_rows else None
    if any(col not in obj.columns for col in filters):
        return None
    frame = apply_filters(obj, filters, "", allow_empty=True)
    return frame if len(frame) else None


def _finish_records(table: pa.Table, opts: ReadOptions, src: str) -> pa.Table:
    table = _records_scale(table, opts.scale_or_default, src)
    return normalize_records(table, src)


def _describe_sources(sources: Iterable[Any]) -> str:
    sources = sorted(map(str, sources))
    return sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} more inputs)"


def parse_filters(filters: Any) -> dict[str, str]:
    """``["shots=5", "family=pythia"]`` (or a dict) -> ``{"shots": "5", "family": "pythia"}``."""
    if not filters:
        return {}
    if isinstance(filters, dict):
        return {str(k): str(v) for k, v in filters.items()}
    out = {}
    for item in filters:
        if "=" not in item:
            raise MirageInputError(f"expected COL=VALUE, got {item!r}", "--filter")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _as_text(series: pd.Series) -> pd.Series:
    """Values as the user types them: whole floats without '.0' (a shots column read as
    floats because of an empty cell still matches ``shots=5``)."""

    def one(v: Any) -> str:
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return str(int(v))
        return str(v)

    return series.map(one)


def apply_filters(frame: pd.DataFrame, filters: dict[str, str], source: str, allow_empty: bool = False) -> pd.DataFrame:
    """Keep the rows whose ``col`` reads as ``value`` for every ``col=value``."""
    for col, val in filters.items():
        if col not in frame.columns:
            raise MirageInputError(
                f"no column {col!r} to filter on (columns: {', '.join(map(str, frame.columns))})", "--filter"
            )
        frame = frame[_as_text(frame[col]) == val]
    if frame.empty and not allow_empty:
        raise MirageInputError(f"no rows left after --filter {filters}", source)
    return frame.reset_index(drop=True)


def _scan_dir(root: Path) -> list[Path]:
    """Input files under ``root``: every known suffix, except hidden files and folders (temp
    files, a store's ``.parts``) and the files mirage writes itself. Folders starting with
    ``_`` are read: lm-eval names a local checkpoint's folder ``__tmp__…``, and a store keeps
    models whose names slug to ``_…`` there."""
    return sorted(
        f
        for f in root.rglob("*")
        if f.is_file()
        and f.suffix.lower() in INPUT_SUFFIXES
        and not any(part.startswith(".") for part in f.relative_to(root).parts)
        and f.name not in MIRAGE_OUTPUTS
    )


def expand_inputs(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Files to read, each with whether it was found by scanning a directory."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise MirageInputError("no such file or directory", str(p))
        if p.is_dir():
            found = _scan_dir(p)
            if not found:
                raise MirageInputError("directory holds no .csv, .parquet, .jsonl, .json or .eval inputs", str(p))
            out.extend((f, True) for f in found)
        else:
            out.append((p, False))
    return out


def _read_one(path: Path, opts: ReadOptions) -> tuple[str, Any, list[str]]:
    """(kind, table, notes) of one file; kind is ``scores``, ``records`` or ``bigbench``
    (BIG-bench score files are read together, so duplicates across files are named)."""
    src = str(path)
    suffix = path.suffix.lower()
    if suffix == ".eval":
        return "records", *read_inspect_log(path, **opts.record_reader_kwargs())
    if suffix == ".json":
        data = load_json(path)
        # an Inspect log also has a 'results' object: it must be told apart before lm-eval
        if looks_like_inspect_log(data):
            return "records", *read_inspect_log(path, **opts.record_reader_kwargs())
        if looks_like_bigbench_results(data):
            if is_full_log(path) or (isinstance(data.get("queries"), list) and data["queries"]):
                table, notes = read_bigbench_full_log(path, data, scale=opts.scale, tokenizers=opts.tokenizers)
                return "records", table, notes
            return "bigbench", None, []
        frame = lm_eval_rows(
            data,
            src,
            family=opts.family,
            scale=opts.scale_or_default,
            scale_from=opts.scale_from,
            scale_table=opts.scale_table,
        )
        return "scores", frame, []
    if suffix in (".jsonl", ".ndjson") and looks_like_lm_eval_samples(sniff_jsonl(path)):
        return "records", *read_lm_eval_samples(path, **opts.record_reader_kwargs())
    table = read_raw_table(path)
    cols = table.column_names
    if looks_like_records(cols):
        return "records", table, []
    frame = table.to_pandas()
    # two or more of the score-table columns: treat it as one and say precisely what is missing
    if len(set(SCORE_REQUIRED) & set(frame.columns)) >= 2:
        return "scores", frame, []
    raise MirageInputError(
        "not a score table (needs family, model, task, metric, value and a scale column) "
        "nor sample records (needs sample_id, target and outputs or log-probabilities)",
        src,
    )


def _records_scale(table: pa.Table, scale: str, src: str) -> pa.Table:
    """Make ``scale`` hold the chosen x axis. With the default (params), an explicit ``scale``
    column wins; otherwise ``params``. Any other choice must name an existing column."""
    cols = table.column_names
    use = None
    if scale in cols and scale != "scale" and (scale != "params" or "scale" not in cols):
        use = scale
    elif "scale" not in cols:
        raise MirageInputError(f"records have neither a 'scale' column nor {scale!r}", src)
    elif scale not in ("params", "scale"):
        raise MirageInputError(f"records have no scale column {scale!r}", src)
    if use is None:
        return table
    try:
        arr = table.column(use).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"scale column {use!r} is not numeric", src) from None
    if "scale" in cols:
        table = table.drop_columns(["scale"])
    return table.append_column("scale", arr)


def _check_enough_models(scores: pd.DataFrame | None, records: pa.Table | RecordSource | None) -> None:
    counts: dict[str, set] = {}
    if scores is not None:
        for fam, model in scores[["family", "model"]].drop_duplicates().itertuples(index=False):
            counts.setdefault(fam, set()).add(model)
    if records is not None:
        pairs = _record_keys(records, ["family", "model"])
        for fam, model in pairs.itertuples(index=False):
            counts.setdefault(fam, set()).add(model)
    if not counts:
        raise MirageInputError("no data in the inputs")
    if all(len(m) < 2 for m in counts.values()):
        if len(counts) == 1:
            raise MirageInputError(
                f"family {next(iter(counts))!r} has only one model; a scaling curve needs at least two"
            )
        raise MirageInputError(
            f"each of the {len(counts)} families has only one model; is the 'family' column right "
            "(e.g. 'pythia' for pythia-70m … pythia-12b)? Use --family to set one family"
        )
