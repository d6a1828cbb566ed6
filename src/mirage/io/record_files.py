"""Parquet record files read lazily: one :class:`~mirage.schema.record_source.RecordFragment` per
row group, so ``mirage analyze`` and ``mirage meta`` hold one (family, task) at a time however large
the files (a ``mirage eval`` store, a sweep's exported records).

Opening a file reads only its schema, its metadata and the key columns (family, model, task,
shots, the scale column, ``--filter`` columns): enough to plan the units, to check the keys
(no missing names, one scale per model) and to say which record columns hold values (from the
row groups' statistics). A row group's records are read, filtered, given their scale and
validated when its first unit is analysed; messages name the file and its row numbers, as for a
file read whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import MirageInputError
from ..schema.record_source import RecordFragment, UnitKey
from ..schema.records import RECORD_COLUMNS, SUM_COLUMN, looks_like_records, normalize_records
from ..schema.until_pass import has_until_pass

# columns the analysis reads (the prompt and the option texts are not needed to score records)
_UNUSED = frozenset({"prompt", "choices"})
_OPTIONAL = ("shots", "output_regex", SUM_COLUMN)


def parquet_records_schema(path: Path) -> pa.Schema | None:
    """The Arrow schema of a Parquet file that holds records, else None (read from the footer only)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MirageInputError(f"malformed parquet file: {str(exc).strip().splitlines()[0]}", str(path)) from None
    if not looks_like_records(schema.names) or "bigbench_log" in schema.names:
        return None
    if has_until_pass(schema.names):
        return None  # until-pass records are read whole: their pass rates pool every item of a model
    return schema


def parquet_record_fragments(
    path: Path, schema: pa.Schema, scale: str, filters: Mapping[str, str], offset: int
) -> list[RecordFragment]:
    """The row groups of one Parquet record file as fragments, their first rows numbered from
    ``offset`` in input order (rows ``--filter`` drops are not counted). Empty when a filter names
    a column the file lacks (no row of it can match)."""
    src = str(path)
    names = list(schema.names)
    if any(col not in names for col in filters):
        return []
    scale_column = _scale_source(names, scale, src)
    key_cols = [c for c in ("family", "model", "task", "shots") if c in names]
    read_cols = list(dict.fromkeys(key_cols + [scale_column] + list(filters)))
    wanted = [c for c in names if (c in RECORD_COLUMNS and c not in _UNUSED) or c in _OPTIONAL]
    wanted = list(dict.fromkeys(wanted + [scale_column] + list(filters)))
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    fragments: list[RecordFragment] = []
    file_row = 0  # rows of this file that pass the filters, before this row group
    for i in range(meta.num_row_groups):
        keys_table = pf.read_row_group(i, columns=read_cols)
        keep = _filter_mask(keys_table, filters)
        if keep is not None:
            keys_table = keys_table.filter(pa.array(keep))
        n = keys_table.num_rows
        if n == 0:
            continue
        for col in ("family", "model", "task"):
            if col in keys_table.column_names and keys_table.column(col).null_count:
                raise MirageInputError(f"column {col!r} has {keys_table.column(col).null_count} missing value(s)", src)
        keys = _keys(keys_table, scale_column, src)
        units: tuple[UnitKey, ...] = tuple(sorted({(str(f), str(t)) for f, t in zip(keys["family"], keys["task"])}))
        present = _present(pf, i, wanted, keep)
        fragments.append(
            RecordFragment(
                source=src,
                num_rows=n,
                offset=offset + file_row,
                units=units,
                keys=keys,
                present=present,
                column_names=tuple(dict.fromkeys([*RECORD_COLUMNS, *wanted])),
                read=ReadRowGroup(path, i, tuple(wanted), dict(filters), scale_column, file_row),
            )
        )
        file_row += n
    return fragments


class ReadRowGroup:
    """Read one row group's records: filtered, with the chosen scale, validated (a picklable callable)."""

    def __init__(
        self,
        path: Path,
        group: int,
        columns: tuple[str, ...],
        filters: dict[str, str],
        scale_column: str,
        first_row: int,
    ) -> None:
        self.path, self.group, self.columns = path, group, columns
        self.filters, self.scale_column, self.first_row = filters, scale_column, first_row

    def __call__(self) -> pa.Table:
        """The row group's validated records."""
        src = str(self.path)
        try:
            table = pq.ParquetFile(self.path).read_row_group(self.group, columns=list(self.columns))
        except (pa.ArrowInvalid, OSError) as exc:
            raise MirageInputError(f"malformed parquet file: {str(exc).strip().splitlines()[0]}", src) from None
        keep = _filter_mask(table, self.filters)
        if keep is not None:
            table = table.filter(pa.array(keep))
        table = _with_scale(table, self.scale_column, src)
        return normalize_records(table, src, first_row=self.first_row)


def _scale_source(names: Sequence[str], scale: str, src: str) -> str:
    """The column the records' scale comes from (as :func:`mirage.io.inputs._records_scale` chooses)."""
    if scale in names and scale != "scale" and (scale != "params" or "scale" not in names):
        return scale
    if "scale" not in names:
        raise MirageInputError(f"records have neither a 'scale' column nor {scale!r}", src)
    if scale not in ("params", "scale"):
        raise MirageInputError(f"records have no scale column {scale!r}", src)
    return "scale"


def _with_scale(table: pa.Table, scale_column: str, src: str) -> pa.Table:
    if scale_column == "scale":
        return table
    try:
        arr = table.column(scale_column).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"scale column {scale_column!r} is not numeric", src) from None
    if "scale" in table.column_names:
        table = table.drop_columns(["scale"])
    return table.append_column("scale", arr)


def _filter_mask(table: pa.Table, filters: Mapping[str, str]) -> np.ndarray | None:
    """Rows whose ``col`` reads as ``value`` for every ``--filter col=value`` (None: no filter)."""
    if not filters:
        return None
    keep = np.ones(table.num_rows, dtype=bool)
    for col, val in filters.items():
        column = table.column(col)
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = pa.array([None if v is None else str(v) for v in column.to_pylist()], type=pa.string())
        keep &= pc.fill_null(pc.equal(text, val), False).to_numpy(zero_copy_only=False)
    return keep


def _keys(table: pa.Table, scale_column: str, src: str) -> pd.DataFrame:
    """Distinct (family, model, task, shots, scale) of a row group's key columns."""
    try:
        scale = table.column(scale_column).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"scale column {scale_column!r} is not numeric", src) from None
    cols = {c: table.column(c) for c in ("family", "model", "task") if c in table.column_names}
    cols["scale"] = scale
    if "shots" in table.column_names:
        cols["shots"] = table.column("shots")
    small = pa.table(cols).group_by(list(cols)).aggregate([]).to_pandas()
    if "shots" not in small.columns:
        small["shots"] = pd.NA
    try:
        small["shots"] = small["shots"].astype("Float64").astype("Int64")
    except (TypeError, ValueError):
        raise MirageInputError("column 'shots' must hold whole numbers", src) from None
    for col in ("family", "model", "task"):
        small[col] = small[col].astype(str)
    return small[["family", "model", "task", "shots", "scale"]]


def _present(pf: pq.ParquetFile, group: int, wanted: Sequence[str], keep: np.ndarray | None) -> frozenset[str]:
    """Record columns with a value in this row group: from the column statistics (a list column
    counts when it has an element; one with only empty lists does not), else read."""
    rg = pf.metadata.row_group(group)
    leaves: dict[str, list[int]] = {}
    for j in range(rg.num_columns):
        leaves.setdefault(rg.column(j).path_in_schema.split(".")[0], []).append(j)
    out = set()
    unknown = []
    for col in wanted:
        if keep is not None:
            unknown.append(col)
            continue
        idx = leaves.get(col, [])
        stats = [rg.column(j).statistics for j in idx]
        if not idx or any(s is None for s in stats):
            unknown.append(col)
            continue
        nested = any("." in rg.column(j).path_in_schema for j in idx)
        if nested:
            if any(s.has_min_max for s in stats):
                out.add(col)
        elif any(s.null_count < rg.column(j).num_values for s, j in zip(stats, idx)):
            out.add(col)
    if unknown:
        table = pf.read_row_group(group, columns=unknown)
        if keep is not None:
            table = table.filter(pa.array(keep))
        out |= {c for c in unknown if table.column(c).null_count < table.num_rows}
    return frozenset(out | {"scale"})
