"""Reading inputs: long score tables, lm-evaluation-harness results and sample records.

``read_inputs`` detects each file by its content, so ``mirage analyze`` takes any mix of them
(files or directories, read recursively). Everything is validated before anything is written;
problems raise :class:`~mirage.errors.MirageInputError` naming the file.

Long score table (one row per family, model, task, metric[, shots]):
    required ``family, model, task, metric, value`` and a scale column (``--scale``, default
    ``params``); optional ``stderr``, ``shots``, ``step``, ``n_samples``, ``metric_kind``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import MirageInputError
from .records import looks_like_records, normalize_records, read_raw_table

SCORE_REQUIRED = ("family", "model", "task", "metric", "value")
SCORE_KEY = ("family", "model", "task", "metric", "shots")
# files mirage itself writes next to its inputs (analyze, theory, meta, eval): derived results,
# not inputs, so a directory scan passes over them (a file named explicitly is still read)
MIRAGE_OUTPUTS = frozenset({
    "manifest.json", "summary.json", "curves.csv", "emergence.csv", "verdicts.csv", "predictions.csv",
    "prediction_fits.csv", "lengths.csv", "resolution.csv", "samples.parquet", "theory.csv", "crossings.csv",
    "meta_curves.csv", "meta_emergence.csv", "meta_by_metric.csv", "meta_pairs.csv", "meta_rescore.csv",
})


@dataclass(frozen=True)
class Inputs:
    """What the inputs hold: a long score table and/or sample records (either may be None)."""

    scores: pd.DataFrame | None
    records: pa.Table | None
    sources: tuple[str, ...] = ()
    scale_column: str = "params"
    notes: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------- entry point


def read_inputs(
    paths: Sequence[str | Path],
    *,
    scale: str = "params",
    filters: dict[str, str] | Sequence[str] | None = None,
    family: str | None = None,
    scale_from: str | None = None,
    exclude: Iterable[str | Path] = (),
    curve_by: Sequence[str] = (),
) -> Inputs:
    """Read and validate every input; return one score table and one record table.

    Files found by scanning a directory that are none of the known kinds are skipped with a
    note (``Inputs.notes``); files named explicitly must be readable. ``exclude`` lists files
    another reader has taken (e.g. BIG-bench results in ``mirage meta``). ``curve_by``: score-table
    columns that are part of a curve's identity (rows differing only there are not duplicates).

    Training checkpoints: when the scale column (e.g. ``step``) varies within a model, each model
    becomes its own curve over its checkpoints (family ``family/model``, one point per scale
    value), and a note says so.
    """
    if not paths:
        raise MirageInputError("no input given")
    filters = parse_filters(filters)
    score_frames: list[pd.DataFrame] = []
    record_tables: list[pa.Table] = []
    sources: list[str] = []
    notes: list[str] = []
    skip = {Path(p).resolve() for p in exclude}
    for path, found_in_dir in expand_inputs(paths):
        if path.resolve() in skip:
            continue
        try:
            kind, obj = _read_one(path, scale=scale, family=family, scale_from=scale_from)
        except MirageInputError as exc:
            # a side file in a directory (e.g. a parameter table) is skipped, not fatal
            if found_in_dir and "not a score table" in str(exc):
                notes.append(f"skipped {path}: neither a score table, lm-eval results nor records")
                continue
            raise
        sources.append(str(path))
        if kind == "records":
            record_tables.append(obj)
        else:
            score_frames.append(obj)
    scores = None
    if score_frames:
        scores = pd.concat(score_frames, ignore_index=True, sort=False)
        scores = apply_filters(scores, filters, "score table")
        scores, checkpoint_note = per_model_checkpoints(scores, scale)
        if checkpoint_note:
            notes.append(checkpoint_note)
        scores = validate_scores(scores, _describe_sources(scores["source"].unique()), curve_by=curve_by)
    records = None
    if record_tables:
        try:
            records = pa.concat_tables(record_tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise MirageInputError(f"record inputs do not share one schema: {exc}") from None
        if filters:
            frame_cols = set(records.column_names)
            for col, val in filters.items():
                if col not in frame_cols:
                    raise MirageInputError(f"no column {col!r} in the records", "--filter")
                mask = pa.compute.equal(records.column(col).cast(pa.string()), val)
                records = records.filter(mask)
            if records.num_rows == 0:
                raise MirageInputError("no records left after --filter", "--filter")
        records = normalize_records(records, "records")
    if not sources:
        raise MirageInputError("no score table, lm-eval results or records among the inputs")
    _check_enough_models(scores, records)
    return Inputs(scores=scores, records=records, sources=tuple(sources), scale_column=scale, notes=tuple(notes))


def _describe_sources(sources) -> str:
    sources = sorted(map(str, sources))
    return sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} more inputs)"


def parse_filters(filters) -> dict[str, str]:
    if not filters:
        return {}
    if isinstance(filters, dict):
        return {str(k): str(v) for k, v in filters.items()}
    out = {}
    for item in filters:
        if "=" not in item:
            raise MirageInputError(f"expected COL=VALUE, got {item!r}", "--filter")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def apply_filters(frame: pd.DataFrame, filters: dict[str, str], source: str) -> pd.DataFrame:
    for col, val in filters.items():
        if col not in frame.columns:
            raise MirageInputError(f"no column {col!r} to filter on (columns: {', '.join(map(str, frame.columns))})", "--filter")
        frame = frame[frame[col].astype(str) == val]
    if frame.empty:
        raise MirageInputError(f"no rows left after --filter {filters}", source)
    return frame.reset_index(drop=True)


def expand_inputs(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Files to read, each with whether it was found by scanning a directory."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise MirageInputError("no such file or directory", str(p))
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in (".csv", ".parquet", ".jsonl", ".json")
                and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
                and f.name not in MIRAGE_OUTPUTS
            )
            if not found:
                raise MirageInputError("directory holds no .csv, .parquet, .jsonl or .json inputs", str(p))
            out.extend((f, True) for f in found)
        else:
            out.append((p, False))
    return out


def _read_one(path: Path, *, scale: str, family: str | None, scale_from: str | None):
    src = str(path)
    if path.suffix.lower() == ".json":
        return "scores", read_lm_eval_json(path, family=family, scale_from=scale_from, scale=scale)
    table = read_raw_table(path)
    cols = table.column_names
    if looks_like_records(cols):
        table = _records_scale(table, scale, src)
        return "records", normalize_records(table, src)
    frame = table.to_pandas()
    # two or more of the score-table columns: treat it as one and say precisely what is missing
    if len(set(SCORE_REQUIRED) & set(frame.columns)) >= 2:
        return "scores", normalize_score_table(frame, src, scale=scale)
    raise MirageInputError(
        "not a score table (needs family, model, task, metric, value and a scale column) "
        "nor sample records (needs sample_id, target and outputs or log-probabilities)",
        src,
    )


def _records_scale(table: pa.Table, scale: str, src: str) -> pa.Table:
    """Make ``scale`` hold the chosen x axis. With the default (params), an explicit ``scale``
    column wins; otherwise ``params``. Any other choice must name an existing column."""
    cols = table.column_names
    use = None
    if scale in cols and scale != "scale" and (scale != "params" or "scale" not in cols):
        use = scale
    elif "scale" not in cols:
        raise MirageInputError(f"records have neither a 'scale' column nor {scale!r}", src)
    elif scale not in ("params", "scale"):
        raise MirageInputError(f"records have no scale column {scale!r}", src)
    if use is None:
        return table
    try:
        arr = table.column(use).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MirageInputError(f"scale column {use!r} is not numeric", src) from None
    if "scale" in cols:
        table = table.drop_columns(["scale"])
    return table.append_column("scale", arr)


# ----------------------------------------------------------------------------- score tables


def normalize_score_table(frame: pd.DataFrame, source: str, scale: str = "params") -> pd.DataFrame:
    """Validate one long score table and add the ``scale`` column from ``scale``."""
    missing = [c for c in SCORE_REQUIRED if c not in frame.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(map(repr, missing))} for a score table", source)
    if scale not in frame.columns:
        hint = [c for c in ("params", "scale", "step", "train_flops", "tokens_seen", "nonembedding_params") if c in frame.columns]
        raise MirageInputError(
            f"scale column {scale!r} missing" + (f" (try --scale {hint[0]})" if hint else ""), source
        )
    frame = frame.copy()
    for col in ("family", "model", "task", "metric"):
        if frame[col].isna().any():
            raise MirageInputError(f"column {col!r} has {int(frame[col].isna().sum())} missing value(s)", source)
        frame[col] = frame[col].astype(str)
    frame["value"] = _numeric_column(frame, "value", source, positive=False)
    frame["scale"] = _numeric_column(frame, scale, source, positive=True)
    if "stderr" in frame.columns:
        frame["stderr"] = pd.to_numeric(frame["stderr"], errors="coerce").astype(float)
    else:
        frame["stderr"] = np.nan
    if "shots" in frame.columns:
        if frame["shots"].isna().any():
            raise MirageInputError("column 'shots' has missing values", source)
        frame["shots"] = frame["shots"].astype(int)
    if "n_samples" in frame.columns:
        frame["n_samples"] = pd.to_numeric(frame["n_samples"], errors="coerce")
    if "source" not in frame.columns:
        frame["source"] = source
    return frame


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
    return out, (f"scale {scale!r} varies within models: one curve per model over its checkpoints "
                 f"({int((varies > 1).sum())} models; family 'family/model', model 'model@{scale}=value')")


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
        varying = [c for c in rows.columns if c not in key and c not in ("value", "stderr", "source", "n_samples")
                   and rows.groupby(key, dropna=False)[c].nunique(dropna=False).max() > 1]
        hint = f"; if {', '.join(map(repr, varying[:3]))} tells them apart, pass --curve-by" if varying else ""
        raise MirageInputError(f"{int(frame.duplicated(key).sum())} duplicate row(s) for the same {tuple(key)}, "
                               f"first {first}{hint}", source)
    scales = frame.groupby(["family", "model"])["scale"].nunique()
    if (scales > 1).any():
        fam, model = scales[scales > 1].index[0]
        raise MirageInputError(f"model {model!r} of family {fam!r} has more than one scale value", source)
    return frame


def _check_enough_models(scores: pd.DataFrame | None, records: pa.Table | None) -> None:
    counts: dict[str, set] = {}
    if scores is not None:
        for fam, model in scores[["family", "model"]].drop_duplicates().itertuples(index=False):
            counts.setdefault(fam, set()).add(model)
    if records is not None:
        pairs = records.select(["family", "model"]).to_pandas().drop_duplicates()
        for fam, model in pairs.itertuples(index=False):
            counts.setdefault(fam, set()).add(model)
    if not counts:
        raise MirageInputError("no data in the inputs")
    if all(len(m) < 2 for m in counts.values()):
        if len(counts) == 1:
            raise MirageInputError(
                f"family {next(iter(counts))!r} has only one model; a scaling curve needs at least two"
            )
        raise MirageInputError(
            f"each of the {len(counts)} families has only one model; is the 'family' column right "
            "(e.g. 'pythia' for pythia-70m … pythia-12b)? Use --family to set one family"
        )


# ----------------------------------------------------------------------------- lm-eval results

_SIZE = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)([kmbt])(?![a-z])", re.IGNORECASE)
_MULT = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def params_from_name(name: str) -> float | None:
    """``EleutherAI/pythia-1.4b-deduped`` -> 1.4e9 (the last size-like token in the name)."""
    base = name.rstrip("/").split("/")[-1]
    found = _SIZE.findall(base.replace("_", "-"))
    if not found:
        return None
    num, unit = found[-1]
    return float(num) * _MULT[unit.lower()]


def family_from_name(name: str) -> str:
    base = name.rstrip("/").split("/")[-1]
    fam = _SIZE.sub("", base.replace("_", "-"))
    # precision tags name a checkpoint format, not a different family
    fam = re.sub(r"-(bf16|fp16|fp32|float16|bfloat16|float32|int8|int4)(?=-|$)", "", fam, flags=re.IGNORECASE)
    fam = re.sub(r"-{2,}", "-", fam).strip("-.")
    return fam or base


def _model_name(data: dict) -> str | None:
    for key in ("model_name",):
        if isinstance(data.get(key), str) and data[key]:
            return data[key].rstrip("/").split("/")[-1]
    cfg = data.get("config") or {}
    args = cfg.get("model_args")
    if isinstance(args, dict):
        args = ",".join(f"{k}={v}" for k, v in args.items())
    if isinstance(args, str):
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() in ("pretrained", "model", "path", "engine") and v.strip():
                return v.strip().rstrip("/").split("/")[-1]
    return None


def read_lm_eval_json(
    path: str | Path, *, family: str | None = None, scale_from: str | None = None, scale: str = "params"
) -> pd.DataFrame:
    """One lm-evaluation-harness results file (old or 0.4.x format) -> long score table rows.

    Old format: ``results[task][metric]`` with ``metric_stderr`` and ``config.num_fewshot``.
    0.4.x: ``results[task]["metric,filter"]`` with ``"metric_stderr,filter"``, ``n-shot``,
    ``n-samples`` and ``config.model_num_parameters``. The scale comes from ``scale_from``:
    ``config`` (model_num_parameters), ``name`` (a size like 70m or 1.4b in the model name) or
    a CSV file with columns ``model`` and the scale column; by default config, then name.
    """
    path = Path(path)
    src = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MirageInputError(f"malformed JSON: {exc.msg} at line {exc.lineno}", src) from None
    except UnicodeDecodeError:
        raise MirageInputError("not a UTF-8 text file", src) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise MirageInputError("not an lm-evaluation-harness results file (no 'results' object)", src)
    model = _model_name(data)
    if model is None:
        model = path.stem
    fam = family or family_from_name(model)
    cfg = data.get("config") or {}
    n_shot = data.get("n-shot") or {}
    n_samples = data.get("n-samples") or {}
    default_shots = cfg.get("num_fewshot")
    rows = []
    for task, metrics in data["results"].items():
        if not isinstance(metrics, dict):
            raise MirageInputError(f"results[{task!r}] is not an object", src)
        shots = n_shot.get(task, default_shots)
        shots = int(shots) if isinstance(shots, (int, float)) and not isinstance(shots, bool) else 0
        n = None
        ns = n_samples.get(task)
        if isinstance(ns, dict):
            n = ns.get("effective") or ns.get("original")
        for key, value in metrics.items():
            name, _, filt = str(key).partition(",")
            if name.endswith("_stderr") or name == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            stderr = metrics.get(f"{name}_stderr" + (f",{filt}" if filt else ""))
            stderr = float(stderr) if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) else math.nan
            metric = name if not filt or filt == "none" else f"{name}[{filt}]"
            rows.append(dict(family=fam, model=model, task=task, metric=metric, value=float(value),
                             stderr=stderr, shots=shots, n_samples=n, source=src))
    if not rows:
        raise MirageInputError("no numeric results", src)
    frame = pd.DataFrame(rows)
    frame[scale] = _lm_eval_scale(data, model, scale_from, src)
    if "step" not in frame.columns:
        m = re.search(r"revision=step(\d+)", str(cfg.get("model_args", "")))
        if m:
            frame["step"] = int(m.group(1))
    return normalize_score_table(frame, src, scale=scale)


def _lm_eval_scale(data: dict, model: str, scale_from: str | None, src: str) -> float:
    cfg = data.get("config") or {}
    if scale_from not in (None, "config", "name"):
        table_path = Path(scale_from)
        if not table_path.exists():
            raise MirageInputError("no such file", f"--scale-from {scale_from}")
        mapping = pd.read_csv(table_path)
        if "model" not in mapping.columns:
            raise MirageInputError("needs a 'model' column", str(table_path))
        num = [c for c in mapping.columns if c != "model" and pd.api.types.is_numeric_dtype(mapping[c])]
        hit = mapping[mapping["model"].astype(str) == model]
        if hit.empty or not num:
            raise MirageInputError(f"no scale for model {model!r}", str(table_path))
        return float(hit.iloc[0][num[0]])
    if scale_from in (None, "config"):
        value = cfg.get("model_num_parameters") or data.get("model_num_parameters")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
        if scale_from == "config":
            raise MirageInputError("config.model_num_parameters is missing; try --scale-from name or a CSV", src)
    value = params_from_name(model)
    if value is None:
        raise MirageInputError(
            f"scale missing for model {model!r}: no config.model_num_parameters and no size in the name; "
            "pass --scale-from FILE.csv (columns model, params)",
            src,
        )
    return value
