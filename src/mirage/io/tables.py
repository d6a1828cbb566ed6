"""Reading tables and JSON: one place where a file becomes a table, with the errors mapped.

Every reader of mirage goes through these, so a malformed, empty or non-UTF-8 file gives the same
one line naming the file (:class:`~mirage.errors.MirageInputError`) whatever the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MirageInputError


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; malformed or non-UTF-8 text raises one line naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MirageInputError(f"malformed JSON: {exc.msg} at line {exc.lineno}", str(path)) from None
    except UnicodeDecodeError:
        raise MirageInputError("not a UTF-8 text file", str(path)) from None


def read_raw_table(path: str | Path) -> pa.Table:
    """Read Parquet, JSONL or CSV into an Arrow table with clear errors; no validation."""
    path = Path(path)
    src = str(path)
    if not path.exists():
        raise MirageInputError("no such file or directory", src)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".jsonl", ".ndjson"):
            return pa.Table.from_pylist(_read_jsonl(path))
        if suffix == ".csv":
            return pa.Table.from_pandas(_arrow_safe(read_csv(path)), preserve_index=False)
    except MirageInputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, OverflowError) as exc:
        raise MirageInputError(f"malformed {suffix[1:]} file: {_first_line(exc)}", src) from None
    raise MirageInputError(f"unknown file type {suffix!r} (expected .parquet, .jsonl or .csv)", src)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        return _parse_jsonl(path, rows)
    except UnicodeDecodeError:
        raise MirageInputError(
            f"not a UTF-8 text file (first bad byte on line {_first_non_utf8_line(path)})", str(path)
        ) from None


def _first_non_utf8_line(path: Path) -> int:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return 1


def _parse_jsonl(path: Path, rows: list[dict]) -> list[dict]:
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                raise MirageInputError(f"line {lineno}: malformed JSON ({exc.msg})", str(path)) from None
            except ValueError as exc:
                raise MirageInputError(f"line {lineno}: {exc}", str(path)) from None
            if not isinstance(row, dict):
                raise MirageInputError(f"line {lineno}: expected a JSON object", str(path))
            rows.append(row)
    if not rows:
        raise MirageInputError("empty file", str(path))
    return rows


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in records")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file; malformed, non-UTF-8 or empty ones raise one line naming the file."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MirageInputError(f"malformed CSV: {_first_line(exc)}", str(path)) from None
    if frame.empty:
        raise MirageInputError("CSV has no rows", str(path))
    return frame


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Integers beyond int64 (e.g. training FLOPs ~1e22) become floats instead of overflowing."""
    for col in frame.columns:
        if frame[col].dtype == object:
            vals = frame[col].dropna()
            if len(vals) and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
                frame[col] = frame[col].astype(float)
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
