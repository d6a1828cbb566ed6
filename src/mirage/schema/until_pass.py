"""The record columns of ``mirage eval --until-pass``: each item sampled until its first pass.

=====================  ===================  ================================================
column                 type                 meaning
=====================  ===================  ================================================
until_pass             int64 >= 1           the limit K of attempts per item
sampling_temperature   float64 > 0          temperature the samples were drawn at
sampling_seed          int64                seed of the samples (with the item's text)
attempts               int64 1 .. K         samples counted: up to and including the first pass
passed                 bool                 whether one of them was an exact match
first_pass             int64, nullable      index (from 0) of the first passing sample
sampled_outputs        list<string>         the first min(attempts, kept) samples' outputs
target_stop_logprob    float64 <= 0, null   teacher-forced log p, at the sampling temperature,
                                            that a sample is exactly the target and then stops
=====================  ===================  ================================================

A record has all of them or none (:data:`UNTIL_PASS_COLUMNS`); :func:`check_until_pass` checks
that they agree with each other (``attempts = first_pass + 1`` when passed, ``= until_pass``
when not), so ``mirage analyze`` can trust them. ``target_stop_logprob`` is null where no sample
can be exactly the target (the target holds a stop string or is longer than the generation limit).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import MirageInputError

UNTIL_PASS_FIELDS: tuple[pa.Field, ...] = (
    pa.field("until_pass", pa.int64()),
    pa.field("sampling_temperature", pa.float64()),
    pa.field("sampling_seed", pa.int64()),
    pa.field("attempts", pa.int64()),
    pa.field("passed", pa.bool_()),
    pa.field("first_pass", pa.int64()),
    pa.field("sampled_outputs", pa.list_(pa.string())),
    pa.field("target_stop_logprob", pa.float64()),
)
UNTIL_PASS_COLUMNS: tuple[str, ...] = tuple(f.name for f in UNTIL_PASS_FIELDS)
# what the pass-rate estimate needs; the others describe the samples
REQUIRED_UNTIL_PASS = ("until_pass", "attempts", "passed")


def has_until_pass(columns: list[str] | tuple[str, ...]) -> bool:
    """Whether records carry the attempts of an until-pass evaluation."""
    return all(c in columns for c in REQUIRED_UNTIL_PASS)


def check_until_pass(table: pa.Table, source: str) -> None:
    """Raise :class:`MirageInputError` naming ``source`` and the first bad row when the until-pass
    columns of ``table`` (if it has any) are incomplete or contradict each other."""
    present = [c for c in REQUIRED_UNTIL_PASS if c in table.column_names]
    if not present:
        return
    if len(present) < len(REQUIRED_UNTIL_PASS):
        missing = [c for c in REQUIRED_UNTIL_PASS if c not in present]
        raise MirageInputError(f"until-pass records need column(s) {', '.join(missing)} as well", source)
    limit = _ints(table, "until_pass", source)
    rows = ~np.isnan(limit)  # records of other evaluations in the same table have none
    if not rows.any():
        return
    attempts = _ints(table, "attempts", source)
    try:
        column = table.column("passed").cast(pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError("column 'passed' must be true or false", source) from None
    unknown = pc.is_null(column).to_numpy(zero_copy_only=False)
    passed = pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)
    first = _ints(table, "first_pass", source) if "first_pass" in table.column_names else None
    with np.errstate(invalid="ignore"):
        problems = [
            (np.isnan(attempts) | unknown, "lacks attempts or passed"),
            (~(limit >= 1), "has until_pass below 1"),
            (~((attempts >= 1) & (attempts <= limit)), "has attempts outside 1 .. until_pass"),
            (~passed & (attempts != limit), "did not pass but has fewer attempts than until_pass"),
        ]
        if first is not None:
            problems.append((passed & (first != attempts - 1), "passed but first_pass is not attempts - 1"))
    if "target_stop_logprob" in table.column_names:
        lp = table.column("target_stop_logprob").cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
        problems.append(
            (~np.isnan(lp) & (~np.isfinite(lp) | (lp > 1e-6)), "has a target_stop_logprob that is not finite and <= 0")
        )
    for bad, what in problems:
        bad = rows & np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            sid = table.column("sample_id")[i].as_py() if "sample_id" in table.column_names else i
            raise MirageInputError(f"row {i + 1} (sample_id {sid!r}) {what}", source)


def _ints(table: pa.Table, name: str, source: str) -> np.ndarray:
    """An integer column as floats (NaN where missing); a fraction or text is an error."""
    try:
        values = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"column {name!r} must hold whole numbers", source) from None
    whole = np.isnan(values) | (np.isfinite(values) & (values == np.round(values)))
    if not whole.all():
        i = int(np.flatnonzero(~whole)[0])
        raise MirageInputError(f"column {name!r} must hold whole numbers; row {i + 1} has {values[i]!r}", source)
    return values
