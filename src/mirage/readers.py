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
BIG-bench ``scores_*.json``                    score rows (:mod:`mirage.bigbench_results`)
BIG-bench ``full-log_*.json``                  records (:mod:`mirage.io.bigbench_logs`)
record files (Parquet/JSONL)                   records (:mod:`mirage.records`)
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

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import MirageInputError
from .io.models import ScaleTable, Tokenizers, read_scale_table
from .metrics import KINDS
from .records import looks_like_records, normalize_records, read_raw_table

SCORE_REQUIRED = ("family", "model", "task", "metric", "value")
SCORE_KEY = ("family", "model", "task", "metric", "shots")
DEFAULT_SCALE = "params"
INPUT_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".eval")
# files mirage itself writes next to its inputs (analyze, theory, meta, eval): derived results,
# not inputs, so a directory scan passes over them (a file named explicitly is still read)
MIRAGE_OUTPUTS = frozenset({
    "manifest.json", "summary.json", "curves.csv", "emergence.csv", "verdicts.csv", "predictions.csv",
    "prediction_fits.csv", "lengths.csv", "resolution.csv", "samples.parquet", "theory.csv", "crossings.csv",
    "meta_curves.csv", "meta_emergence.csv", "meta_by_metric.csv", "meta_pairs.csv", "meta_rescore.csv",
})
# lm-eval results keys that are not metrics (0.4.x writes them beside the metric values)
LM_EVAL_NON_METRICS = frozenset({"alias", "name", "sample_len", "sample_count", "samples", "num_fewshot", "version",
                                 "group", "task", " "})


@dataclass(frozen=True)
class Inputs:
    """What the inputs hold: a long score table and/or sample records (either may be None)."""

    scores: pd.DataFrame | None
    records: pa.Table | None
    sources: tuple[str, ...] = ()
    scale_column: str = "params"
    notes: tuple[str, ...] = field(default=())


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
        return self.scale or DEFAULT_SCALE


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
    """
    from .bigbench_results import read_bigbench_results, scale_bigbench

    if not paths:
        raise MirageInputError("no input given")
    opts = ReadOptions(
        scale=scale, family=family, scale_from=scale_from,
        scale_table=read_scale_table(scale_from) if scale_from not in (None, "config", "name") else None,
        tokenizers=Tokenizers(tokenizer), filters=parse_filters(filters),
    )
    score_frames: list[pd.DataFrame] = []
    record_tables: list[pa.Table] = []
    bigbench: list[Path] = []
    sources: list[str] = []
    notes: list[str] = []
    skip = {Path(p).resolve() for p in exclude}
    filter_columns_seen: set[str] = set()
    axes_seen: list[str] = []  # the x axes in use (BIG-bench chooses one per family)
    for path, found_in_dir in expand_inputs(paths):
        if path.resolve() in skip:
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
    if opts.filters and not score_frames and not record_tables:
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
    if scores is not None and records is not None:
        scores, note = _prefer_records(scores, records)
        if note:
            notes.append(note)
    _check_enough_models(scores, records)
    if scale is None:
        used = list(dict.fromkeys(axes_seen)) or [DEFAULT_SCALE]
        scale_column = used[0] if len(used) == 1 else " / ".join(used) + " (per family; see notes)"
    return Inputs(scores=scores, records=records, sources=tuple(sources), scale_column=scale_column,
                  notes=tuple(dict.fromkeys(notes)))


def _bigbench_records_axis(records: pa.Table, notes: list[str], axes_seen: list[str]) -> pa.Table:
    """Records from BIG-bench full logs get the x axis their family's score files get."""
    from .bigbench_results import family_axes

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
SAME_DEFINITION = frozenset({"brier_score", "multiple_choice_grade"})


def _prefer_records(scores: pd.DataFrame, records: pa.Table) -> tuple[pd.DataFrame | None, str | None]:
    """Score rows of a metric that the records of the same run compute too.

    Where mirage's definition is the tool's own (:data:`SAME_DEFINITION`), the row gives way to
    the records, which carry per-sample intervals; otherwise (lm-eval's ``exact_match`` does not
    strip whitespace, mirage's does) the reported number is kept as ``metric[reported]``.
    Either way no curve point comes from two inputs."""
    from .metrics import METRICS

    def keys(frame: pd.DataFrame) -> pd.Series:
        shots = frame["shots"].astype("Int64").astype(str) if "shots" in frame.columns else pd.Series("<NA>", index=frame.index)
        return frame["family"].astype(str) + "\x1f" + frame["model"].astype(str) + "\x1f" + frame["task"].astype(str) \
            + "\x1f" + shots

    rec = records.select([c for c in ("family", "model", "task", "shots") if c in records.column_names]).to_pandas()
    have = set(keys(rec.drop_duplicates()))
    clash = scores["metric"].isin(list(METRICS)) & keys(scores).isin(have)
    if not clash.any():
        return scores, None
    same = clash & scores["metric"].isin(SAME_DEFINITION)
    renamed = clash & ~same
    parts = []
    if same.any():
        parts.append(f"{int(same.sum())} score row(s) ({', '.join(sorted(scores.loc[same, 'metric'].unique()))}) are "
                     "computed from the per-sample records of the same runs instead of taken from the results files")
    scores = scores.copy()
    if renamed.any():
        names = sorted(scores.loc[renamed, "metric"].unique())
        scores.loc[renamed, "metric"] = scores.loc[renamed, "metric"] + "[reported]"
        parts.append(f"reported {', '.join(names)} kept as {', '.join(n + '[reported]' for n in names)} beside "
                     "mirage's own computation from the per-sample records (definitions may differ, e.g. whitespace)")
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
            raise MirageInputError(f"no column {col!r} to filter on (columns: {', '.join(map(str, frame.columns))})", "--filter")
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
        f for f in root.rglob("*")
        if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES
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


def load_results_json(path: Path) -> Any:
    """Parse a JSON file; malformed or non-UTF-8 text raises one line naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MirageInputError(f"malformed JSON: {exc.msg} at line {exc.lineno}", str(path)) from None
    except UnicodeDecodeError:
        raise MirageInputError("not a UTF-8 text file", str(path)) from None


def _read_one(path: Path, opts: ReadOptions) -> tuple[str, Any, list[str]]:
    """(kind, table, notes) of one file; kind is ``scores``, ``records`` or ``bigbench``
    (BIG-bench score files are read together, so duplicates across files are named)."""
    from .bigbench_results import is_full_log, looks_like_bigbench_results
    from .io.inspect_logs import looks_like_inspect_log, read_inspect_log
    from .io.lm_eval_samples import looks_like_lm_eval_samples, read_lm_eval_samples, sniff_jsonl

    src = str(path)
    suffix = path.suffix.lower()
    if suffix == ".eval":
        table, notes = read_inspect_log(path, family=opts.family, scale=opts.scale_or_default,
                                        scale_from=opts.scale_from, scale_table=opts.scale_table,
                                        tokenizers=opts.tokenizers)
        return "records", table, notes
    if suffix == ".json":
        data = load_results_json(path)
        # an Inspect log also has a 'results' object: it must be told apart before lm-eval
        if looks_like_inspect_log(data):
            table, notes = read_inspect_log(path, family=opts.family, scale=opts.scale_or_default,
                                            scale_from=opts.scale_from, scale_table=opts.scale_table,
                                            tokenizers=opts.tokenizers)
            return "records", table, notes
        if looks_like_bigbench_results(data):
            if is_full_log(path) or (isinstance(data.get("queries"), list) and data["queries"]):
                from .io.bigbench_logs import read_bigbench_full_log

                table, notes = read_bigbench_full_log(path, data, scale=opts.scale, tokenizers=opts.tokenizers)
                return "records", table, notes
            return "bigbench", None, []
        frame = lm_eval_rows(data, src, family=opts.family, scale=opts.scale_or_default, scale_from=opts.scale_from,
                             scale_table=opts.scale_table)
        return "scores", frame, []
    if suffix in (".jsonl", ".ndjson") and looks_like_lm_eval_samples(sniff_jsonl(path)):
        table, notes = read_lm_eval_samples(path, family=opts.family, scale=opts.scale_or_default,
                                            scale_from=opts.scale_from, scale_table=opts.scale_table,
                                            tokenizers=opts.tokenizers)
        return "records", table, notes
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


# ----------------------------------------------------------------------------- score tables


def normalize_score_table(frame: pd.DataFrame, source: str, scale: str = "params") -> pd.DataFrame:
    """Validate one long score table and add the ``scale`` column from ``scale``.

    Every bad value is reported with its row (1-based, counting a CSV's header line)."""
    missing = [c for c in SCORE_REQUIRED if c not in frame.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))} for a score table", source)
    if scale not in frame.columns:
        hint = [c for c in ("params", "scale", "step", "train_flops", "tokens_seen", "nonembedding_params") if c in frame.columns]
        raise MirageInputError(
            f"scale column {scale!r} missing" + (f" (try --scale {hint[0]})" if hint else ""), source
        )
    frame = frame.reset_index(drop=True).copy()
    for col in ("family", "model", "task", "metric"):
        if frame[col].isna().any():
            raise MirageInputError(f"column {col!r} has {int(frame[col].isna().sum())} missing value(s)", source)
        frame[col] = frame[col].astype(str)
    frame["value"] = _numeric_column(frame, "value", source, positive=False)
    frame["scale"] = _numeric_column(frame, scale, source, positive=True)
    if "stderr" in frame.columns:
        frame["stderr"] = _optional_number(frame, "stderr", source, "a number >= 0", lambda v: v >= 0)
    else:
        frame["stderr"] = np.nan
    if "shots" in frame.columns:
        shots = _optional_number(frame, "shots", source, "a whole number >= 0 (or empty: not applicable)",
                                 lambda v: (v >= 0) & (v == np.floor(v)))
        frame["shots"] = pd.array(shots.to_numpy(), dtype="Float64").astype("Int64")
    if "n_samples" in frame.columns:
        frame["n_samples"] = _optional_number(frame, "n_samples", source, "a whole number > 0",
                                              lambda v: (v > 0) & (v == np.floor(v)))
    if "metric_kind" in frame.columns:
        kinds = frame["metric_kind"]
        given = kinds.notna() & (kinds.astype(str).str.strip() != "")
        bad = given & ~kinds.astype(str).str.strip().isin(KINDS + ("unknown",))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MirageInputError(
                f"column 'metric_kind' must be one of {', '.join(KINDS)} (or empty); row {i + 2} has {kinds.iloc[i]!r}",
                source)
        frame["metric_kind"] = kinds.where(given, None).map(lambda v: v.strip() if isinstance(v, str) else v)
        frame.loc[frame["metric_kind"] == "unknown", "metric_kind"] = None
    if "higher_is_better" in frame.columns:
        frame["higher_is_better"] = _optional_bool(frame, "higher_is_better", source)
    if "source" not in frame.columns:
        frame["source"] = source
    return frame


def _optional_number(frame: pd.DataFrame, column: str, source: str, what: str, ok: Any) -> pd.Series:
    """An optional numeric column: empty cells are NaN; text, inf and values ``ok`` rejects are
    errors naming the first bad row (a ``shots`` of 1.5 is not silently truncated)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    empty = raw.isna() | raw.astype(str).str.strip().isin(("", "nan", "NaN", "NA", "<NA>", "None"))
    with np.errstate(invalid="ignore"):
        bad = (~empty & (values.isna() | ~np.isfinite(values))) | (values.notna() & ~ok(values).fillna(False))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MirageInputError(f"column {column!r} must be {what}; row {i + 2} has {raw.iloc[i]!r}", source)
    return values.where(~empty, np.nan)


def _optional_bool(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    words = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False}
    out = []
    for i, v in enumerate(frame[column]):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif str(v).strip().lower() in words:
            out.append(words[str(v).strip().lower()])
        else:
            raise MirageInputError(f"column {column!r} must be true or false; row {i + 2} has {v!r}", source)
    return pd.Series(out, index=frame.index, dtype=object)


def _numeric_column(frame: pd.DataFrame, column: str, source: str, positive: bool) -> pd.Series:
    """The column as floats; the first bad row (1-based, counting the header) is named."""
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    bad = values.isna() | ~np.isfinite(values)
    if positive:
        bad |= values <= 0
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        what = "a positive number" if positive else "a finite number"
        label = f"scale column {column!r}" if positive else f"column {column!r}"
        raise MirageInputError(
            f"{label} must be {what}; {int(bad.sum())} row(s) are missing, NaN or not "
            f"(first at row {i + 2}: {frame[column].iloc[i]!r})",
            source,
        )
    return values


# scale columns that count a model's training, so one model has many values of them
CHECKPOINT_SCALES = ("step", "steps", "checkpoint", "tokens", "tokens_seen", "train_tokens", "train_flops", "flops")


def per_model_checkpoints(frame: pd.DataFrame, scale: str) -> tuple[pd.DataFrame, str | None]:
    """Training checkpoints as curves: when ``scale`` (a training count such as ``step``) varies
    within a model, each model becomes a family of its own checkpoints. Returns (table, note)."""
    if scale not in CHECKPOINT_SCALES or frame.empty:
        return frame, None
    varies = frame.groupby(["family", "model"])["scale"].nunique()
    if not (varies > 1).any():
        return frame, None
    out = frame.copy()
    out["family"] = out["family"].astype(str) + "/" + out["model"].astype(str)
    out["model"] = out["model"].astype(str) + f"@{scale}=" + out["scale"].map(lambda v: f"{v:g}")
    return out, (f"scale {scale!r} varies within models: one curve per model over its checkpoints "
                 f"({int((varies > 1).sum())} models; family 'family/model', model 'model@{scale}=value')")


def validate_scores(frame: pd.DataFrame, source: str, curve_by: Sequence[str] = ()) -> pd.DataFrame:
    """Checks that need the whole table: duplicates and one scale per model."""
    missing = [c for c in curve_by if c not in frame.columns]
    if missing:
        raise MirageInputError(f"no column(s) {', '.join(map(repr, missing))} in the score table", "--curve-by")
    key = [c for c in SCORE_KEY if c in frame.columns] + list(curve_by)
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        first = frame.loc[dup, key].iloc[0].to_dict()
        rows = frame[dup]
        varying = [c for c in rows.columns if c not in key and c not in ("value", "stderr", "source", "n_samples")
                   and rows.groupby(key, dropna=False)[c].nunique(dropna=False).max() > 1]
        hint = f"; if {', '.join(map(repr, varying[:3]))} tells them apart, pass --curve-by" if varying else ""
        raise MirageInputError(f"{int(frame.duplicated(key).sum())} duplicate row(s) for the same {tuple(key)}, "
                               f"first {first}{hint}", source)
    scales = frame.groupby(["family", "model"])["scale"].nunique()
    if (scales > 1).any():
        fam, model = scales[scales > 1].index[0]
        raise MirageInputError(f"model {model!r} of family {fam!r} has more than one scale value", source)
    return frame


def _check_enough_models(scores: pd.DataFrame | None, records: pa.Table | None) -> None:
    counts: dict[str, set] = {}
    if scores is not None:
        for fam, model in scores[["family", "model"]].drop_duplicates().itertuples(index=False):
            counts.setdefault(fam, set()).add(model)
    if records is not None:
        pairs = records.select(["family", "model"]).to_pandas().drop_duplicates()
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


# ----------------------------------------------------------------------------- lm-eval results

_SIZE = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)([kmbt])(?![a-z])", re.IGNORECASE)
_MULT = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def params_from_name(name: str) -> float | None:
    """``EleutherAI/pythia-1.4b-deduped`` -> 1.4e9 (the last size-like token in the name)."""
    base = name.rstrip("/").split("/")[-1]
    found = _SIZE.findall(base.replace("_", "-"))
    if not found:
        return None
    num, unit = found[-1]
    return float(num) * _MULT[unit.lower()]


def family_from_name(name: str) -> str:
    """``pythia-1.4b-deduped`` -> ``pythia-deduped``: the name without its size and precision tags."""
    base = name.rstrip("/").split("/")[-1]
    fam = _SIZE.sub("", base.replace("_", "-"))
    # precision tags name a checkpoint format, not a different family
    fam = re.sub(r"-(bf16|fp16|fp32|float16|bfloat16|float32|int8|int4)(?=-|$)", "", fam, flags=re.IGNORECASE)
    fam = re.sub(r"-{2,}", "-", fam).strip("-.")
    return fam or base


def _model_args(data: dict) -> str | None:
    cfg = data.get("config")
    args = cfg.get("model_args") if isinstance(cfg, dict) else None
    if isinstance(args, dict):
        args = ",".join(f"{k}={v}" for k, v in args.items())
    return args if isinstance(args, str) else None


def _model_name(data: dict) -> str | None:
    if isinstance(data.get("model_name"), str) and data["model_name"]:
        return data["model_name"].rstrip("/").split("/")[-1]
    args = _model_args(data)
    if args:
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() in ("pretrained", "model", "path", "engine") and v.strip():
                return v.strip().rstrip("/").split("/")[-1]
    return None


def read_lm_eval_json(
    path: str | Path, *, family: str | None = None, scale_from: str | None = None, scale: str = "params"
) -> pd.DataFrame:
    """One lm-evaluation-harness results file (old or 0.4.x format) -> long score table rows.

    Old format: ``results[task][metric]`` with ``metric_stderr`` and ``config.num_fewshot``.
    0.4.x: ``results[task]["metric,filter"]`` with ``"metric_stderr,filter"``, ``n-shot``,
    ``n-samples``, ``higher_is_better`` and ``config.model_num_parameters``. A metric with an
    answer filter other than ``none`` is named ``metric[filter]`` (``exact_match[first-number]``)
    and has the kind of ``metric``; ``higher_is_better`` is taken from the file; keys that are
    not metrics (``alias``, ``sample_len``, ...) are ignored. The scale comes from
    ``scale_from``: ``config`` (model_num_parameters), ``name`` (a size like 70m or 1.4b in the
    model name), or a CSV / family YAML (see :mod:`mirage.io.models`); by default config, then
    name.
    """
    path = Path(path)
    src = str(path)
    table = read_scale_table(scale_from) if scale_from not in (None, "config", "name") else None
    frame = lm_eval_rows(load_results_json(path), src, family=family, scale=scale, scale_from=scale_from,
                         scale_table=table)
    return normalize_score_table(frame, src, scale=scale)


def _check_mapping(data: dict, key: str, src: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MirageInputError(f"{key!r} must be an object (task -> value), got {type(value).__name__}", src)
    return value


def lm_eval_rows(data: Any, src: str, *, family: str | None = None, scale: str = "params",
                 scale_from: str | None = None, scale_table: ScaleTable | None = None) -> pd.DataFrame:
    """Parsed lm-eval results -> raw score rows (validated by :func:`normalize_score_table`)."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise MirageInputError("not an lm-evaluation-harness results file (no 'results' object)", src)
    cfg = _check_mapping(data, "config", src)
    n_shot = _check_mapping(data, "n-shot", src)
    n_samples = _check_mapping(data, "n-samples", src)
    higher = _check_mapping(data, "higher_is_better", src)
    model = _model_name(data) or Path(src).stem
    fam = family or family_from_name(model)
    default_shots = cfg.get("num_fewshot")
    rows = []
    for task, metrics in data["results"].items():
        if not isinstance(metrics, dict):
            raise MirageInputError(f"results[{task!r}] is not an object", src)
        shots = n_shot.get(task, default_shots)
        shots = int(shots) if isinstance(shots, (int, float)) and not isinstance(shots, bool) and shots >= 0 else 0
        n = None
        ns = n_samples.get(task)
        if isinstance(ns, dict):
            n = ns.get("effective") or ns.get("original")
        task_higher = higher.get(task) if isinstance(higher.get(task), dict) else {}
        for key, value in metrics.items():
            name, _, filt = str(key).partition(",")
            if name.endswith("_stderr") or name in LM_EVAL_NON_METRICS:
                continue
            if task_higher and name not in task_higher:
                continue  # the file lists its metrics in higher_is_better: anything else is not one
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            stderr = metrics.get(f"{name}_stderr" + (f",{filt}" if filt else ""))
            # lm-eval writes "N/A" where it computed no standard error
            stderr = float(stderr) if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) else math.nan
            metric = name if not filt or filt == "none" else f"{name}[{filt}]"
            hib = task_higher.get(name)
            rows.append(dict(family=fam, model=model, task=task, metric=metric, value=float(value),
                             stderr=stderr, shots=shots, n_samples=n,
                             higher_is_better=bool(hib) if isinstance(hib, bool) else None, source=src))
    if not rows:
        raise MirageInputError("no numeric results", src)
    frame = pd.DataFrame(rows)
    if frame["higher_is_better"].isna().all():
        frame = frame.drop(columns="higher_is_better")
    step = _revision_step(data)
    if step is not None:
        frame["step"] = step
    frame[scale] = lm_eval_scale(data, model, scale, scale_from, scale_table, src)
    return frame


def _revision_step(data: dict) -> float | None:
    """``revision=step143000`` in the model arguments -> 143000.0 (Pythia's checkpoints)."""
    found = re.search(r"revision=step(\d+)", _model_args(data) or "")
    return float(found.group(1)) if found else None


def lm_eval_scale(data: dict, model: str, scale: str, scale_from: str | None, scale_table: ScaleTable | None,
                  src: str) -> float:
    """The scale of an lm-eval run: from ``--scale-from`` (a table, ``config`` or ``name``), by
    default ``config.model_num_parameters`` and then a size in the model name."""
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    if scale_table is not None:
        aliases = []
        args = _model_args(data) or ""
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() in ("pretrained", "model", "path") and v.strip():
                aliases.append(v.strip())
        return scale_table.lookup(model, scale, *aliases)
    if scale == "step":
        step = _revision_step(data)
        if step is None:
            raise MirageInputError("no checkpoint step (revision=stepN in the model arguments); "
                                   "give steps with --scale-from FILE.csv (columns model, step)", src)
        return step
    if scale != "params":
        raise MirageInputError(f"lm-eval results carry no {scale!r}; give it with --scale-from FILE.csv "
                               f"(columns model, {scale})", src)
    if scale_from in (None, "config"):
        value = cfg.get("model_num_parameters") or data.get("model_num_parameters")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        if scale_from == "config":
            raise MirageInputError("config.model_num_parameters is missing; try --scale-from name or a CSV", src)
    value = params_from_name(model)
    if value is None:
        raise MirageInputError(
            f"scale missing for model {model!r}: no config.model_num_parameters and no size in the name; "
            "pass --scale-from FILE.csv (columns model, params)",
            src,
        )
    return value
