"""Sample record files: read (Parquet, JSONL, a directory of them) and written (Parquet), always
validated against the record schema (:mod:`mirage.schema.records`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import MirageInputError
from ..schema.records import normalize_records
from .files import write_parquet
from .tables import read_raw_table


def read_records(path: str | Path) -> pa.Table:
    """Read a Parquet or JSONL record file (or a directory of them) and validate it."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".jsonl") and not p.name.startswith("."))
        if not files:
            raise MirageInputError("no .parquet or .jsonl record files in directory", str(path))
        tables = [read_raw_table(f) for f in files]
        table = _concat(tables, str(path))
        return normalize_records(table, str(path))
    return normalize_records(read_raw_table(path), str(path))


def _concat(tables: list[pa.Table], source: str) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MirageInputError(f"record files do not share one schema: {exc}", source) from None


def write_records(table: pa.Table | pd.DataFrame, path: str | Path) -> None:
    """Validate and write records to Parquet atomically."""
    write_parquet(path, normalize_records(table, str(path)))
