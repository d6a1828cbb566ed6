"""Long score tables: one row per (family, model, task, metric[, shots]) with ``value``, a scale
column and optional ``stderr``, ``shots``, ``n_samples``, ``metric_kind`` and
``higher_is_better``, each value checked with its row named (1-based, counting a CSV's header)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MirageInputError
from ..schema.vocab import KINDS, MetricKind

SCORE_REQUIRED = ("family", "model", "task", "metric", "value")
SCORE_KEY = ("family", "model", "task", "metric", "shots")
DEFAULT_SCALE = "params"


def normalize_score_table(frame: pd.DataFrame, source: str, scale: str = "params") -> pd.DataFrame:
    """Validate one long score table and add the ``scale`` column from ``scale``.

    Every bad value is reported with its row (1-based, counting a CSV's header line)."""
    missing = [c for c in SCORE_REQUIRED if c not in frame.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))} for a score table", source)
    if scale not in frame.columns:
        hint = [
            c
            for c in ("params", "scale", "step", "train_flops", "tokens_seen", "nonembedding_params")
            if c in frame.columns
        ]
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
        shots = _optional_number(
            frame,
            "shots",
            source,
            "a whole number >= 0 (or empty: not applicable)",
            lambda v: (v >= 0) & (v == np.floor(v)),
        )
        frame["shots"] = pd.array(shots.to_numpy(), dtype="Float64").astype("Int64")
    if "n_samples" in frame.columns:
        frame["n_samples"] = _optional_number(
            frame, "n_samples", source, "a whole number > 0", lambda v: (v > 0) & (v == np.floor(v))
        )
    if "metric_kind" in frame.columns:
        kinds = frame["metric_kind"]
        given = kinds.notna() & (kinds.astype(str).str.strip() != "")
        bad = given & ~kinds.astype(str).str.strip().isin(KINDS + (MetricKind.UNKNOWN.value,))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MirageInputError(
                f"column 'metric_kind' must be one of {', '.join(KINDS)} (or empty); row {i + 2} has {kinds.iloc[i]!r}",
                source,
            )
        frame["metric_kind"] = kinds.where(given, None).map(lambda v: v.strip() if isinstance(v, str) else v)
        frame.loc[frame["metric_kind"] == MetricKind.UNKNOWN.value, "metric_kind"] = None
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
    if pd.api.types.is_numeric_dtype(raw.dtype):
        empty = raw.isna()  # a numeric column (what a CSV reader gives) holds no words for "empty"
    else:
        empty = raw.isna() | raw.astype(str).str.strip().isin(("", "nan", "NaN", "NA", "<NA>", "None"))
    with np.errstate(invalid="ignore"):
        bad = (~empty & (values.isna() | ~np.isfinite(values))) | (values.notna() & ~ok(values).fillna(False))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MirageInputError(f"column {column!r} must be {what}; row {i + 2} has {raw.iloc[i]!r}", source)
    return values.where(~empty, np.nan)


def _optional_bool(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    words = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False}
    out: list[bool | None] = []
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
    return out, (
        f"scale {scale!r} varies within models: one curve per model over its checkpoints "
        f"({int((varies > 1).sum())} models; family 'family/model', model 'model@{scale}=value')"
    )


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
        varying = [
            c
            for c in rows.columns
            if c not in key
            and c not in ("value", "stderr", "source", "n_samples")
            and rows.groupby(key, dropna=False)[c].nunique(dropna=False).max() > 1
        ]
        hint = f"; if {', '.join(map(repr, varying[:3]))} tells them apart, pass --curve-by" if varying else ""
        raise MirageInputError(
            f"{int(frame.duplicated(key).sum())} duplicate row(s) for the same {tuple(key)}, first {first}{hint}",
            source,
        )
    scales = frame.groupby(["family", "model"])["scale"].nunique()
    if (scales > 1).any():
        fam, model = scales[scales > 1].index[0]
        raise MirageInputError(f"model {model!r} of family {fam!r} has more than one scale value", source)
    return frame
