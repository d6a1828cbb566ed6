"""Rows of per-sample records, as the log readers collect them, into one Arrow table.

The readers of lm-eval sample logs, Inspect logs and BIG-bench full logs each build a list
of dicts (one per sample, with the columns that log has) and turn it into a table here, so
that every column of the record schema gets its schema type whichever reader wrote it and a
value of the wrong type is one error line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..errors import MirageInputError
from ..schema.records import RECORD_SCHEMA, SUM_COLUMN

# columns that several readers write beside the record schema
_COMMON_TYPES: dict[str, pa.DataType] = {
    SUM_COLUMN: pa.float64(),
    "targets": pa.list_(pa.string()),
    "shots": pa.int64(),
}


def table_from_rows(
    rows: Sequence[Mapping[str, Any]], source: str, extra_types: Mapping[str, pa.DataType] | None = None
) -> pa.Table:
    """One table with a column per key seen in ``rows`` (first-seen order), missing values null.

    Record-schema columns get their schema type, ``extra_types`` names the reader's own
    columns; other columns are typed by Arrow's inference.
    """
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    types: dict[str, pa.DataType] = {f.name: f.type for f in RECORD_SCHEMA}
    types.update(_COMMON_TYPES)
    types.update(extra_types or {})
    try:
        return pa.table({k: pa.array([r.get(k) for r in rows], type=types.get(k)) for k in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MirageInputError(f"cannot build records: {exc}", source) from None
