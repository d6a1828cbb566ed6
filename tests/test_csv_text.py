"""mirage's CSV writer (Arrow kernels) against ``DataFrame.to_csv``: the same text where no float
is written, and always the same table read back (values and dtypes)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from pandas.testing import assert_frame_equal

from mirage.io.csv_text import csv_text


def _strings_and_ints() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": pd.array(["plain", "a,b", 'say "hi"', "two\nlines", "", None, "é ünï", "tab\tx"], dtype="str"),
            "count": np.arange(8, dtype=np.int64) - 3,
            "shots": pd.array([0, 1, None, 3, 4, None, 6, 7], dtype="Int64"),
            "flag": [True, False] * 4,
            "maybe": pd.array([True, None, False, True, None, False, True, True], dtype="boolean"),
            "mixed": pd.Series(["x", 1, 2.5, None, "y,z", True, np.nan, "w"], dtype=object),
        }
    )


def test_text_equals_to_csv_without_floats() -> None:
    frame = _strings_and_ints()
    assert csv_text(frame) == frame.to_csv(index=False)


def test_floats_read_back_exactly_with_their_dtypes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(size=50) * 10.0 ** rng.integers(-320, 300, 50),
            [0.0, -0.0, 1.0, 1e7, 1e11, 1e16, 1e22, 123456789012.5, 5e-324, 2.2250738585072014e-308],
            [np.inf, -np.inf, np.nan, 1.7976931348623157e308, 3.162277660168379e-05, 0.1, 1 / 3],
        ]
    )
    n = len(values)
    frame = pd.DataFrame(
        {
            "value": values,
            "integral": np.arange(n, dtype=float) * 1000.0,  # must stay a float column
            "label": [f"r{i}" for i in range(n)],
        }
    )
    ours = pd.read_csv(io.StringIO(csv_text(frame)))
    theirs = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
    assert_frame_equal(ours, theirs, check_exact=True)
    assert ours["integral"].dtype == np.float64
    # every value is the same double, not merely close
    np.testing.assert_array_equal(ours["value"].to_numpy(), values)


def test_blocks_join_into_one_table(monkeypatch) -> None:
    import mirage.io.csv_text as ct

    monkeypatch.setattr(ct, "_BLOCK_ROWS", 3)
    frame = _strings_and_ints()
    assert csv_text(frame) == frame.to_csv(index=False)
    assert csv_text(frame.iloc[:0]) == frame.iloc[:0].to_csv(index=False)


def test_a_carriage_return_is_quoted_and_reads_back() -> None:
    # to_csv leaves "a\rb" unquoted with its "\n" line ending, and read_csv then splits the row
    frame = pd.DataFrame({"name": ["a\rb", "c"], "n": [1, 2]})
    assert pd.read_csv(io.StringIO(csv_text(frame)))["name"].tolist() == ["a\rb", "c"]


def test_arrow_backed_columns_in_several_chunks() -> None:
    # pandas' Arrow-backed strings may hold several chunks (a concatenation does)
    part = pd.Series(["a", "b,c"], dtype="str")
    frame = pd.DataFrame({"s": pd.concat([part, part], ignore_index=True), "x": [1.5, 2.0, np.nan, 4.0]})
    assert pd.read_csv(io.StringIO(csv_text(frame))).equals(pd.read_csv(io.StringIO(frame.to_csv(index=False))))


def test_quoting_and_integral_floats_in_a_later_block(monkeypatch) -> None:
    # quoting is decided once per column and integral floats are found per block: a field that
    # needs quotes, and a whole number, only in the last block are still written as to_csv does
    import mirage.io.csv_text as ct

    monkeypatch.setattr(ct, "_BLOCK_ROWS", 2)
    frame = pd.DataFrame(
        {
            "name": pd.array(["a", "b", "c", 'd,"e"', "f"], dtype="str"),
            "x": [0.5, 1.25, np.nan, 2.75, 3.0],
        }
    )
    assert csv_text(frame) == frame.to_csv(index=False)
