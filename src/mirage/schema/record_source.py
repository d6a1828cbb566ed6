"""Sample records read one (family, task) unit at a time, so memory does not grow with the input.

A :class:`RecordSource` is a sequence of :class:`RecordFragment` pieces in input order (a
Parquet file's row group, or a table already in memory), each knowing which (family, task) units
it holds and how to read its records. :meth:`RecordSource.iter_units` yields every unit's records
in sorted unit order, reading each fragment once and keeping it only until every unit it holds has
been yielded: with records stored unit by unit (a ``mirage eval`` store, files or row groups per
task) at most one unit is in memory at a time; a file that interleaves units row by row is held
until its units are complete.

Within a unit, rows keep their input order; :attr:`UnitRecords.positions` are their row numbers
in the concatenation of all inputs, so a table rebuilt from the units can be put back in input
order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import MirageInputError
from .records import SUM_COLUMN, check_unique_keys

UnitKey = tuple[str, str]  # (family, task)


@dataclass(frozen=True)
class RecordFragment:
    """One piece of record input: ``read()`` gives its validated records (the record schema).

    ``keys``: the fragment's (family, model, task, shots, scale) combinations, one row each, for
    checks across inputs and for planning; ``present``: record columns with at least one value
    here; ``offset``: the input-order row number of its first record.
    """

    source: str
    num_rows: int
    offset: int
    units: tuple[UnitKey, ...]
    keys: pd.DataFrame
    present: frozenset[str]
    column_names: tuple[str, ...]
    read: Callable[[], pa.Table]


@dataclass(frozen=True)
class UnitRecords:
    """The records of one (family, task), in input order, with their input-order row numbers."""

    family: str
    task: str
    table: pa.Table
    positions: np.ndarray
    n_pieces: int = 1


@dataclass(frozen=True)
class RecordSource:
    """Record inputs read unit by unit (see the module docstring)."""

    fragments: tuple[RecordFragment, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def num_rows(self) -> int:
        """Records in all fragments."""
        return sum(f.num_rows for f in self.fragments)

    @property
    def column_names(self) -> list[str]:
        """Every column any fragment has (the schema of their concatenation)."""
        names: dict[str, None] = {}
        for f in self.fragments:
            names.update(dict.fromkeys(f.column_names))
        return list(names)

    @property
    def present(self) -> frozenset[str]:
        """Columns with at least one value in some fragment."""
        out: set[str] = set()
        for f in self.fragments:
            out |= f.present
        return frozenset(out)

    def keys(self) -> pd.DataFrame:
        """The distinct (family, model, task, shots, scale) combinations of all fragments."""
        frames = [f.keys for f in self.fragments if len(f.keys)]
        if not frames:
            return pd.DataFrame(columns=["family", "model", "task", "shots", "scale"])
        return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)

    def units(self) -> list[UnitKey]:
        """Every (family, task), sorted."""
        return sorted({u for f in self.fragments for u in f.units})

    def iter_units(self, prefetch: bool = True) -> Iterator[UnitRecords]:
        """Each unit's records in sorted unit order; every fragment is read once. ``prefetch``:
        the next fragment is read in a background thread while a unit is analysed (Arrow reads
        and decodes without the interpreter lock), one fragment ahead at most."""
        pending: dict[int, set[UnitKey]] = {i: set(f.units) for i, f in enumerate(self.fragments)}
        holders: dict[UnitKey, list[int]] = {}
        for i, f in enumerate(self.fragments):
            for u in f.units:
                holders.setdefault(u, []).append(i)
        units = sorted(holders)
        # the order fragments are first needed in
        reads: list[int] = []
        seen: set[int] = set()
        for unit in units:
            for i in holders[unit]:
                if i not in seen:
                    seen.add(i)
                    reads.append(i)
        loaded: dict[int, tuple[pa.Table, dict[UnitKey, np.ndarray]]] = {}
        pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(reads) > 1 else None
        futures: dict[int, Future[tuple[pa.Table, dict[UnitKey, np.ndarray]]]] = {}
        next_read = 0

        def load(i: int) -> tuple[pa.Table, dict[UnitKey, np.ndarray]]:
            table = self.fragments[i].read()
            return table, unit_rows(table)

        def ahead() -> None:
            nonlocal next_read
            while next_read < len(reads) and (reads[next_read] in loaded or reads[next_read] in futures):
                next_read += 1
            if pool is not None and next_read < len(reads) and not futures:
                i = reads[next_read]
                futures[i] = pool.submit(load, i)

        try:
            for unit in units:
                pieces, positions = [], []
                for i in holders[unit]:
                    if i not in loaded:
                        loaded[i] = futures.pop(i).result() if i in futures else load(i)
                    ahead()
                    table, rows_of = loaded[i]
                    rows = rows_of.get(unit, np.array([], dtype=np.int64))
                    pieces.append(table if len(rows) == table.num_rows else table.take(pa.array(rows)))
                    positions.append(self.fragments[i].offset + rows)
                    pending[i].discard(unit)
                    if not pending[i]:
                        del loaded[i]  # every unit it holds is out: let it go
                yield UnitRecords(unit[0], unit[1], _concat(pieces), np.concatenate(positions), len(pieces))
        finally:
            if pool is not None:
                for pending_read in futures.values():
                    pending_read.cancel()
                pool.shutdown(wait=True)

    def to_table(self) -> pa.Table:
        """Every record in input order, in memory (for small inputs and for code that wants a table)."""
        return _concat([f.read() for f in self.fragments])


def _concat(tables: Sequence[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MirageInputError(f"record inputs do not share one schema: {exc}") from None


def unit_rows(table: pa.Table) -> dict[UnitKey, np.ndarray]:
    """The row numbers of each (family, task) of ``table``, ascending."""
    if table.num_rows == 0:
        return {}
    frame = pd.DataFrame(
        {
            "family": pd.Categorical(table.column("family").to_pandas()),
            "task": pd.Categorical(table.column("task").to_pandas()),
        }
    )
    return {
        (str(k[0]), str(k[1])): np.asarray(v, dtype=np.int64)
        for k, v in frame.groupby(["family", "task"], sort=False, observed=True).indices.items()
    }


def table_keys(table: pa.Table) -> pd.DataFrame:
    """The distinct (family, model, task, shots, scale) combinations of a record table."""
    cols = ["family", "model", "task", "shots", "scale"]
    present = [c for c in cols if c in table.column_names]
    frame = table.select(present).to_pandas()
    if "shots" not in frame.columns:
        frame["shots"] = pd.NA
    frame["shots"] = frame["shots"].astype("Int64")
    return frame[cols].drop_duplicates(ignore_index=True)


def present_columns(table: pa.Table) -> frozenset[str]:
    """The columns of ``table`` with at least one value."""
    return frozenset(c for c in table.column_names if table.column(c).null_count < table.num_rows)


def table_fragment(table: pa.Table, source: str = "records", offset: int = 0) -> RecordFragment:
    """A fragment of validated records already in memory."""
    unit_keys = tuple(unit_rows(table))
    return RecordFragment(
        source=source,
        num_rows=table.num_rows,
        offset=offset,
        units=unit_keys,
        keys=table_keys(table),
        present=present_columns(table),
        column_names=tuple(table.column_names),
        read=lambda: table,
    )


def as_record_source(records: pa.Table | RecordSource | None) -> RecordSource | None:
    """``records`` as a :class:`RecordSource` (a table becomes one fragment in memory)."""
    if records is None or isinstance(records, RecordSource):
        return records
    return RecordSource((table_fragment(records),))


def check_unit(unit: UnitRecords) -> None:
    """What one unit's records must satisfy across the fragments they came from: no record twice
    (the same family, model, task and sample_id) and one scale per model."""
    table = unit.table
    check_unique_keys(table, "records")
    per_model = table.select(["family", "model", "scale"]).to_pandas().drop_duplicates()
    clash = per_model.duplicated(["family", "model"])
    if clash.any():
        row = per_model[clash].iloc[0]
        raise MirageInputError(f"model {row['model']!r} of family {row['family']!r} has more than one scale", "records")


__all__ = [
    "RecordFragment",
    "RecordSource",
    "SUM_COLUMN",
    "UnitKey",
    "UnitRecords",
    "as_record_source",
    "check_unit",
    "present_columns",
    "table_fragment",
    "table_keys",
    "unit_rows",
]
