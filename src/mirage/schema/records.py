"""Sample records: the fixed model outputs every metric is computed from.

One record per (family, model, task, sample_id). The schema (README, "Sample records"):

=================  ===================  =====================================================
column             type                 meaning
=================  ===================  =====================================================
family             string               model family, e.g. ``pythia``
model              string               model name within the family
scale              float64 > 0          default x coordinate (parameters unless stated)
task               string               task name
sample_id          string               stable id of the sample within the task
prompt             string               full prompt shown to the model
target             string               reference answer
output             string, nullable     greedy generation (null when not generated)
target_tokens      list<string>         target split into the model's tokens
output_tokens      list<string>, null   output split into the model's tokens
target_logprobs    list<double>         teacher-forced log p of each target token
choices            list<string>, null   multiple-choice options
choice_logprobs    list<double>, null   log p of each option, summed over its tokens
choice_lengths     list<int64>, null    number of tokens of each option
correct_choice     int64, nullable      index of the right option
=================  ===================  =====================================================

Optional columns with a meaning to mirage: ``shots`` (part of a curve's identity),
``output_regex`` (answer extraction before exact match), ``params``, ``non_embedding_params``,
``train_tokens``, ``train_flops``, ``step``, ``seed``, and ``target_logprob_sum`` (float64: the
target's summed log-probability where the per-token values are unknown, as in lm-eval's
log-likelihood logs; used only where ``target_logprobs`` is null, with ``target_tokens``
counting the tokens). The columns of ``mirage eval --until-pass`` (``attempts``, ``passed``, ...)
are checked as :mod:`mirage.schema.until_pass` describes. Every other column is kept as is.

Log-probabilities (``target_logprobs``, ``target_logprob_sum``) must be finite and <= 0, and
option scores (``choice_logprobs``) finite (they may be log-likelihood ratios): NaN, ``+inf``
and ``-inf`` (a zero-probability token, e.g. a ``-1e400`` JSONL literal) are rejected with the
row named, so that no single value can turn a whole curve into NaN or ``-inf``. A model that really assigns probability zero should be given a floor (say
``-1e4``) by whoever writes the records; mirage does not invent one.

Records are stored as Parquet; JSONL is accepted as input. Token lists may be given as ids
(integers); they are compared as strings.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import MirageInputError
from .until_pass import check_until_pass

KEY_COLUMNS = ("family", "model", "task", "sample_id")
# a target's summed log-probability, where the per-token values are unknown (lm-eval log-likelihoods)
SUM_COLUMN = "target_logprob_sum"
REQUIRED_COLUMNS = ("family", "model", "scale", "task", "sample_id", "target")

RECORD_SCHEMA = pa.schema(
    [
        ("family", pa.string()),
        ("model", pa.string()),
        ("scale", pa.float64()),
        ("task", pa.string()),
        ("sample_id", pa.string()),
        ("prompt", pa.string()),
        ("target", pa.string()),
        ("output", pa.string()),
        ("target_tokens", pa.list_(pa.string())),
        ("output_tokens", pa.list_(pa.string())),
        ("target_logprobs", pa.list_(pa.float64())),
        ("choices", pa.list_(pa.string())),
        ("choice_logprobs", pa.list_(pa.float64())),
        ("choice_lengths", pa.list_(pa.int64())),
        ("correct_choice", pa.int64()),
    ]
)
RECORD_COLUMNS = tuple(RECORD_SCHEMA.names)
_SCHEMA_FIELDS = {f.name: f for f in RECORD_SCHEMA}


def looks_like_records(columns: Iterable[str]) -> bool:
    """Records are recognised by their per-sample columns."""
    cols = set(columns)
    return {"sample_id", "target"} <= cols and bool(
        cols & {"output", "target_logprobs", "choice_logprobs", "target_logprob_sum"}
    )


def normalize_records(table: pa.Table | pd.DataFrame, source: str = "records", *, first_row: int = 0) -> pa.Table:
    """Validate and cast a table to the record schema; extra columns are kept.

    Raises :class:`MirageInputError` naming ``source`` for missing columns, NaN or duplicated
    keys, non-positive scales and inconsistent lists. ``first_row``: the row number in its file
    of the table's first row, when the table is one piece of a file (row numbers in messages
    are the file's).
    """
    if isinstance(table, pd.DataFrame):
        table = _table_from_pandas(table, source)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))} for sample records", source)
    if table.num_rows == 0:
        raise MirageInputError("no records", source)
    columns, names = [], []
    for name in table.column_names:
        col = table.column(name)
        if name in _SCHEMA_FIELDS:
            col = _cast(col, _SCHEMA_FIELDS[name].type, name, source)
        columns.append(col)
        names.append(name)
    for name in RECORD_COLUMNS:  # absent optional columns become nulls
        if name not in names:
            columns.append(pa.nulls(table.num_rows, _SCHEMA_FIELDS[name].type))
            names.append(name)
    out = pa.Table.from_arrays(columns, names=names)
    _validate(out, source, first_row)
    check_until_pass(out, source)
    return out


def _table_from_pandas(frame: pd.DataFrame, source: str) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MirageInputError(f"cannot read records: {exc}", source) from None


def _cast(col: pa.ChunkedArray, typ: pa.DataType, name: str, source: str) -> pa.ChunkedArray:
    if col.type == typ:
        return col
    try:
        if pa.types.is_list(typ) and pa.types.is_string(typ.value_type) and pa.types.is_list(col.type):
            # token ids -> strings
            return col.cast(pa.list_(pa.string()))
        if pa.types.is_null(col.type):
            return pa.nulls(len(col), typ)
        return col.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise MirageInputError(f"column {name!r} cannot be read as {typ}: {exc}", source) from None


def _validate(table: pa.Table, source: str, first_row: int = 0) -> None:
    for name in ("family", "model", "task", "sample_id", "target"):
        if table.column(name).null_count:
            raise MirageInputError(f"column {name!r} has {table.column(name).null_count} missing value(s)", source)
    scale = table.column("scale").to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(scale) | (scale <= 0)
    if bad.any():
        raise MirageInputError(
            f"column 'scale' must be finite and positive; {int(bad.sum())} row(s) are not (first: {scale[bad][0]!r})",
            source,
        )
    lp = table.column("target_logprobs")
    _check_logprob_lists(table, "target_logprobs", source, first_row=first_row)
    # option scores may be log-likelihood ratios (mutual information), so only finiteness
    _check_logprob_lists(table, "choice_logprobs", source, allow_positive=True, first_row=first_row)
    if "target_logprob_sum" in table.column_names:
        _check_logprob_values(table, "target_logprob_sum", source, first_row)
    if lp.null_count < len(lp):
        tl = list_lengths(table.column("target_tokens"))
        ll = list_lengths(lp)
        both = ~np.isnan(tl) & ~np.isnan(ll)
        if (tl[both] != ll[both]).any():
            i = int(np.flatnonzero(both & (tl != ll))[0])
            raise MirageInputError(
                f"row {i + first_row}: target_logprobs has {int(ll[i])} values but target_tokens has {int(tl[i])} tokens",
                source,
            )
    check_unique_keys(table, source)
    per_model = table.select(["family", "model", "scale"]).to_pandas().drop_duplicates()
    clash = per_model.duplicated(["family", "model"])
    if clash.any():
        row = per_model[clash].iloc[0]
        raise MirageInputError(f"model {row['model']!r} of family {row['family']!r} has more than one scale", source)


def _row_label(table: pa.Table, i: int, first_row: int = 0) -> str:
    keys = {k: table.column(k)[i].as_py() for k in ("model", "task", "sample_id") if k in table.column_names}
    return f"row {i + 1 + first_row} ({', '.join(f'{k} {v!r}' for k, v in keys.items())})"


def _bad_value_message(name: str, value: float) -> str:
    if np.isnan(value):
        return f"{name} has NaN"
    if value == -np.inf:
        return f"{name} has -inf (a zero-probability token); give a finite floor such as -1e4 if that is meant"
    if value == np.inf:
        return f"{name} has +inf"
    return f"{name} has positive log-probabilities (first {float(value)!r})"


def _check_logprob_lists(
    table: pa.Table, name: str, source: str, allow_positive: bool = False, first_row: int = 0
) -> None:
    """Every value of a list column of log-probabilities finite (and <= 0); the row is named."""
    col = table.column(name)
    if col.null_count == len(col):
        return
    col = col.combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(float)
    bad = ~np.isfinite(flat) if allow_positive else (~np.isfinite(flat) | (flat > 1e-6))
    if not bad.any():
        return
    lengths = np.nan_to_num(list_lengths(col), nan=0).astype(np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    j = int(np.flatnonzero(bad)[0])
    label = _row_label(table, int(rows[j]), first_row)
    raise MirageInputError(f"{label}: {_bad_value_message(name, flat[j])}", source)


def _check_logprob_values(table: pa.Table, name: str, source: str, first_row: int = 0) -> None:
    try:
        values = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"column {name!r} is not numeric", source) from None
    given = ~pd.isna(values)
    bad = given & (~np.isfinite(np.where(given, values, 0.0)) | (np.where(given, values, 0.0) > 1e-6))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MirageInputError(f"{_row_label(table, i, first_row)}: {_bad_value_message(name, values[i])}", source)


def list_lengths(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Length of each list as floats, NaN for null lists."""
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    return np.asarray(pd.array(lengths, dtype="Float64").to_numpy(dtype=float, na_value=np.nan))


def records_from_rows(rows: list[dict], source: str = "records") -> pa.Table:
    """Build a validated record table from Python dicts (handy in notebooks and tests)."""
    return normalize_records(pa.Table.from_pylist(rows), source)


def check_unique_keys(table: pa.Table, source: str) -> None:
    """No record twice: one row per (family, model, task, sample_id), else one error line naming
    how many and the first."""
    keys = table.select(list(KEY_COLUMNS)).to_pandas()
    dup = keys.duplicated()
    if dup.any():
        first = keys[dup].iloc[0].to_dict()
        raise MirageInputError(
            f"{int(dup.sum())} duplicate record(s) for the same (family, model, task, sample_id), first {first}",
            source,
        )
