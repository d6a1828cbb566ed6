"""Lazily computed, cached per-sample arrays of a record table: what every per-sample metric reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from ..schema.records import SUM_COLUMN, list_lengths

T = TypeVar("T")


class RecordView:
    """Lazily computed, cached per-sample arrays of a record table (pyarrow)."""

    def __init__(self, table: pa.Table, answer_regex: str | None = None, present: frozenset[str] | None = None):
        """``present``: the columns that have values somewhere in the whole input, when ``table``
        is one part of it (a unit of a streamed input): metrics are then chosen and computed as for
        the whole input, not for what this part happens to hold."""
        self.table = table
        self.n = table.num_rows
        self.answer_regex = answer_regex
        self.present = present
        self._cache: dict[str, np.ndarray] = {}
        self._strings: dict[str, list[Any]] = {}
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, fn: Callable[[], T]) -> T:
        """``fn()``, computed once per view: what several metrics read (a stripped column, the
        correct option's log-probability)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def _cached(self, key: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _has_column(self, column: str) -> bool:
        if column not in self.table.column_names:
            return False
        if self.present is not None:
            return column in self.present
        return self.table.column(column).null_count < self.n

    def has(self, column: str) -> bool:
        """Whether some record has a value in ``column``."""
        if column == "target_logprobs" and self._has_column(SUM_COLUMN):
            return True  # summed log-probabilities stand in where per-token values are unknown
        return self._has_column(column)

    # -- list helpers -----------------------------------------------------------------------
    def list_lengths(self, column: str) -> np.ndarray:
        """Length of each list (NaN for null lists)."""
        return self._cached(f"len:{column}", lambda: list_lengths(self.table.column(column)))

    def target_token_counts(self) -> np.ndarray:
        """Tokens behind each target log-probability: the length of ``target_logprobs``, or, for
        a row that has only ``target_logprob_sum``, of ``target_tokens`` (NaN when neither)."""

        def f() -> np.ndarray:
            lengths = self.list_lengths("target_logprobs")
            if self._has_column(SUM_COLUMN):
                use = np.isnan(lengths) & np.isfinite(self._sum_column())
                lengths = np.where(use, self.list_lengths("target_tokens"), lengths)
            return lengths

        return self._cached("target_token_counts", f)

    def _sum_column(self) -> np.ndarray:
        v = self.table.column(SUM_COLUMN).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(v, dtype=float)

    def list_sums(self, column: str) -> np.ndarray:
        """Sum of each numeric list (NaN for null lists, 0 for empty ones), row by row.

        Each row is reduced on its own (``np.add.reduceat`` over the row starts), never through
        a cumulative sum across rows, so one extreme value stays in its own row. For
        ``target_logprobs``, rows with a null list take ``target_logprob_sum`` when present."""

        def f() -> np.ndarray:
            col = self.table.column(column).combine_chunks()
            lengths = list_lengths(self.table.column(column))
            flat = col.flatten().to_numpy(zero_copy_only=False).astype(float)
            lens = np.nan_to_num(lengths, nan=0).astype(np.int64)
            sums = np.zeros(self.n)
            filled = lens > 0
            if filled.any():
                starts = (np.cumsum(lens) - lens)[filled]
                sums[filled] = np.add.reduceat(flat, starts)
            sums = np.where(np.isnan(lengths), np.nan, sums)
            if column == "target_logprobs" and self._has_column(SUM_COLUMN):
                sums = np.where(np.isnan(lengths), self._sum_column(), sums)
            return sums

        return self._cached(f"sum:{column}", f)

    def choice_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows × max_choices) log-prob matrix padded with -inf, and the number of choices."""

        def f() -> np.ndarray:
            col = self.table.column("choice_logprobs").combine_chunks()
            lengths = np.nan_to_num(self.list_lengths("choice_logprobs"), nan=0).astype(np.int64)
            width = int(lengths.max()) if len(lengths) else 0
            flat = col.flatten().to_numpy(zero_copy_only=False).astype(float)
            if width > 0 and len(flat) == self.n * width and bool((lengths == width).all()):
                return flat.reshape(self.n, width)  # every record the same number of options
            mat = np.full((self.n, max(width, 1)), -np.inf)
            rows = np.repeat(np.arange(self.n), lengths)
            starts = np.cumsum(lengths) - lengths
            cols = np.arange(len(flat)) - np.repeat(starts, lengths)
            mat[rows, cols] = flat
            return mat

        mat = self._cached("choice_matrix", f)
        return mat, np.nan_to_num(self.list_lengths("choice_logprobs"), nan=0).astype(np.int64)

    def correct_choice(self) -> np.ndarray:
        """Index of each record's correct option as floats (NaN where none)."""

        def f() -> np.ndarray:
            v = self.table.column("correct_choice").to_numpy(zero_copy_only=False)
            out = np.asarray(pd.array(v, dtype="Float64").to_numpy(dtype=float, na_value=np.nan))
            out.flags.writeable = False
            return out

        return self._cached("correct_choice", f)

    def strings(self, column: str) -> list[Any]:
        """A column as Python values (strings or None), cached."""
        key = f"str:{column}"
        if key not in self._strings:
            self._strings[key] = self.table.column(column).to_pylist()
        return self._strings[key]
