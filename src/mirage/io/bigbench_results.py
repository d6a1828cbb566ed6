"""Reading BIG-bench results files (``benchmark_tasks/<task>/results/scores_*.json``).

A results file holds one model's scores on one task::

    {"model": {"model_family": "BIG-G T=0", "model_name": "2m", "total_params": 18482048,
               "non_embedding_params": 2098048, "flop_matched_non_embedding_params": 2098048, ...},
     "task": {"task_name": "arithmetic"},
     "scores": [{"subtask_description": "arithmetic:1_digit_addition", "number_of_shots": 0,
                 "preferred_score": "multiple_choice_grade",
                 "score_dict": {"multiple_choice_grade": 0.21, "exact_str_match": 0.0, ...}}, ...]}

As in BIG-bench's own ``add_aggregate_scores``, an entry whose ``subtask_description`` equals
the task name (``task.task_name``, else the ``<task>`` folder above ``results/``) aggregates the
task's subtasks when the task has any; such rows are kept as task-level curves and marked
``aggregate=True``. ``number_of_shots: -1`` ("does not apply", BIG-bench's ScoreData) becomes
an empty ``shots``; a ``NaN`` score is dropped with a note. Only ``scores_*.json`` files are
score files: a ``full-log_*.json`` beside them holds the same scores plus the queries and is
read as per-sample records (:mod:`mirage.io.bigbench_logs`).

:func:`read_bigbench_results` turns files or directory trees into the core long score table
(one row per family, model, task, metric, shots) so the same curve code applies:
``family, model, params, non_embedding_params, flop_matched_non_embedding_params, task,
parent_task, subtask, shots, metric, value, preferred, aggregate, metric_kind, source``.
``task`` is the entry's ``subtask_description`` (``arithmetic:1_digit_addition``, or the task
name itself for a task without subtasks or an aggregate), because each is its own curve.

The x axis (:func:`scale_bigbench`) is, by default, what BIG-bench plots: flop-matched
non-embedding parameters (a family where a model lacks that count falls back to non-embedding,
then total parameters, and the notes say so); ``--scale params``, ``non_embedding_params`` or
``flop_matched_non_embedding_params`` picks one count, and models whose count is 0 are left out
with a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MirageInputError
from ..metrics import bigbench_kind
from ..schema.tables import set_shots
from .tables import load_json

AGGREGATE_SCORE = "normalized_aggregate_score"
MODEL_KEYS = ("model_family", "model_name", "total_params", "non_embedding_params", "flop_matched_non_embedding_params")
ENTRY_KEYS = ("subtask_description", "number_of_shots", "preferred_score", "score_dict")
SCALE_COLUMNS = {
    "params": "total_params",
    "non_embedding_params": "non_embedding_params",
    "flop_matched_non_embedding_params": "flop_matched_non_embedding_params",
}


def looks_like_bigbench_results(data: Any) -> bool:
    """A parsed JSON document with a ``model`` object and a ``scores`` list."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict) and isinstance(data.get("scores"), list)


def _number(value: Any, what: str, src: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MirageInputError(f"{what} must be a finite number, got {value!r}", src)
    if positive and value <= 0:
        raise MirageInputError(f"{what} must be positive, got {value!r}", src)
    return float(value)


def task_name_of(data: dict, source: str) -> str | None:
    """The top-level task: ``task.task_name``, else the ``<task>`` folder of ``<task>/results/``."""
    task = data.get("task")
    if isinstance(task, dict) and isinstance(task.get("task_name"), str) and task["task_name"].strip():
        return task["task_name"].strip()
    path = Path(source)
    if path.parent.name == "results" and path.parent.parent.name:
        return path.parent.parent.name
    return None


def model_sizes(model: dict, source: str) -> dict[str, float]:
    """The three parameter counts of a results file's ``model`` (each a number >= 0)."""
    sizes = {}
    for key in ("total_params", "non_embedding_params", "flop_matched_non_embedding_params"):
        value = _number(model[key], f"model.{key}", source)
        if value < 0:
            raise MirageInputError(f"model.{key} must not be negative, got {model[key]!r}", source)
        sizes[key] = value
    if not any(sizes.values()):
        raise MirageInputError("model.total_params must be positive (every parameter count is 0)", source)
    return sizes


def check_model(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The validated ``model`` object of a results or full-log file."""
    model = data["model"]
    missing = [k for k in MODEL_KEYS if k not in model]
    if missing:
        raise MirageInputError(f"model is missing {', '.join(map(repr, missing))}", source)
    for key in ("model_family", "model_name"):
        if not isinstance(model[key], str) or not model[key].strip():
            raise MirageInputError(f"model.{key} must be a non-empty string", source)
    return model


def parse_shots(shots: Any, where: str, source: str) -> int | None:
    """``number_of_shots``: an integer >= 0, or -1 for "does not apply" (None)."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < -1:
        raise MirageInputError(
            f"{where}.number_of_shots must be a non-negative integer or -1 (does not apply), got {shots!r}", source
        )
    return None if shots == -1 else shots


def parse_bigbench_results(data: Any, source: str, notes: list[str] | None = None) -> pd.DataFrame:
    """One parsed results document -> long score table rows (validated). Dropped NaN scores
    are reported in ``notes``."""
    if not looks_like_bigbench_results(data):
        raise MirageInputError("not a BIG-bench results file (needs a 'model' object and a 'scores' list)", source)
    model = check_model(data, source)
    sizes = model_sizes(model, source)
    if not data["scores"]:
        raise MirageInputError("'scores' is empty", source)
    task_name = task_name_of(data, source)
    descs = [e.get("subtask_description") for e in data["scores"] if isinstance(e, dict)]
    has_subtasks = task_name is not None and any(isinstance(d, str) and d.startswith(task_name + ":") for d in descs)
    rows, dropped = [], []
    for i, entry in enumerate(data["scores"]):
        where = f"scores[{i}]"
        if not isinstance(entry, dict):
            raise MirageInputError(f"{where} is not an object", source)
        gone = [k for k in ENTRY_KEYS if k not in entry]
        if gone:
            raise MirageInputError(f"{where} is missing {', '.join(map(repr, gone))}", source)
        desc, preferred, scores = entry["subtask_description"], entry["preferred_score"], entry["score_dict"]
        if not isinstance(desc, str) or not desc.strip():
            raise MirageInputError(f"{where}.subtask_description must be a non-empty string", source)
        shots = parse_shots(entry["number_of_shots"], where, source)
        if not isinstance(scores, dict) or not scores:
            raise MirageInputError(f"{where}.score_dict must be a non-empty object", source)
        if preferred not in scores:
            raise MirageInputError(f"{where}: preferred_score {preferred!r} is not in score_dict", source)
        parent, _, sub = desc.partition(":")
        aggregate = has_subtasks and desc == task_name
        for metric, value in scores.items():
            if isinstance(value, float) and math.isnan(value):
                dropped.append(f"{desc} {metric}")
                continue
            rows.append(
                dict(
                    family=model["model_family"].strip(),
                    model=model["model_name"].strip(),
                    params=sizes["total_params"],
                    non_embedding_params=sizes["non_embedding_params"],
                    flop_matched_non_embedding_params=sizes["flop_matched_non_embedding_params"],
                    task=desc,
                    parent_task=parent,
                    subtask=sub,
                    shots=shots,
                    metric=str(metric),
                    value=_number(value, f"{where}.score_dict[{metric!r}]", source),
                    preferred=metric == preferred,
                    aggregate=aggregate,
                    metric_kind=bigbench_kind(str(metric)),
                    source=source,
                )
            )
    if dropped and notes is not None:
        more = f" (+{len(dropped) - 3} more)" if len(dropped) > 3 else ""
        notes.append(f"{source}: {len(dropped)} NaN score(s) dropped: {', '.join(dropped[:3])}{more}")
    if not rows:
        raise MirageInputError("every score is NaN", source)
    frame = pd.DataFrame(rows)
    set_shots(frame)
    return frame


def read_bigbench_file(path: str | Path, notes: list[str] | None = None) -> pd.DataFrame:
    """One ``scores_*.json`` -> long score table rows."""
    path = Path(path)
    return parse_bigbench_results(load_json(path), str(path), notes)


def is_full_log(path: Path) -> bool:
    """BIG-bench names its files ``scores_<family>_<model>.json`` and ``full-log_<...>.json``."""
    return path.name.startswith("full-log_")


def bigbench_files(root: str | Path) -> list[Path]:
    """Every ``*.json`` under ``root`` (recursively) but hidden ones and ``full-log_*.json``."""
    root = Path(root)
    return sorted(
        f
        for f in root.rglob("*.json")
        if f.is_file() and not is_full_log(f) and not any(p.startswith(".") for p in f.relative_to(root).parts)
    )


def read_bigbench_results(paths: Sequence[str | Path], notes: list[str] | None = None) -> pd.DataFrame:
    """Files and directory trees of BIG-bench score files -> one long score table.

    Every file must be a BIG-bench results file; the same (family, model, task, metric,
    shots) twice is an error naming both files.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise MirageInputError("no such file or directory", str(p))
        found = bigbench_files(p) if p.is_dir() else [p]
        if not found:
            raise MirageInputError("directory holds no BIG-bench results (*.json)", str(p))
        files.extend(found)
    frame = pd.concat([read_bigbench_file(f, notes) for f in files], ignore_index=True)
    key = ["family", "model", "task", "metric", "shots"]
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        clash = frame[dup].sort_values(key + ["source"]).iloc[:2]
        first = clash.iloc[0]
        shots = "shots n/a" if pd.isna(first["shots"]) else f"{first['shots']}-shot"
        raise MirageInputError(
            f"{first['family']} {first['model']} {first['task']} {first['metric']} ({shots}) "
            f"is also in {clash.iloc[1]['source']}",
            str(first["source"]),
        )
    return frame


BIGBENCH_DEFAULT_SCALES = ("flop_matched_non_embedding_params", "non_embedding_params", "params")
_SCALE_NAMES = {
    "params": "total parameters",
    "non_embedding_params": "non-embedding parameters",
    "flop_matched_non_embedding_params": "flop-matched non-embedding parameters",
}


def family_axes(counts: pd.DataFrame, notes: list[str]) -> dict[str, str]:
    """Default x axis per family: flop-matched non-embedding parameters when every model of the
    family has them, else non-embedding, else total parameters (a note says so)."""
    axes = {}
    for fam, g in counts.groupby("family", sort=True):
        use = next((c for c in BIGBENCH_DEFAULT_SCALES if (g[c] > 0).all()), "params")
        if use != BIGBENCH_DEFAULT_SCALES[0]:
            notes.append(
                f"BIG-bench family {fam!r}: x axis is {_SCALE_NAMES[use]} (a model has no "
                "flop-matched non-embedding parameter count)"
            )
        axes[str(fam)] = use
    return axes


def scale_bigbench(frame: pd.DataFrame, scale: str | None, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Add ``scale`` (the x axis) and ``x_axis`` (which count it is) to BIG-bench rows.

    ``scale=None``: flop-matched non-embedding parameters, as BIG-bench's own plots; a family
    with a model lacking that count (0) uses non-embedding, then total parameters. A named
    count: rows of models where it is 0 are dropped, with a note naming them."""
    notes: list[str] = []
    frame = frame.copy()
    if scale is None:
        axes = family_axes(frame, notes)
        frame["x_axis"] = frame["family"].map(axes)
        frame["scale"] = [row[axis] for row, axis in zip(frame.to_dict("records"), frame["x_axis"])]
        if (frame["x_axis"] == BIGBENCH_DEFAULT_SCALES[0]).any():
            notes.insert(
                0,
                "BIG-bench inputs: x axis is flop-matched non-embedding parameters, as BIG-bench plots "
                "(--scale params or non_embedding_params for another count)",
            )
        return frame, notes
    if scale not in frame.columns:
        raise MirageInputError(
            f"BIG-bench results have no scale {scale!r} (choose one of {', '.join(SCALE_COLUMNS)})", "--scale"
        )
    zero = frame[scale].isna() | (frame[scale] <= 0)
    if zero.any():
        models = frame.loc[zero, ["family", "model"]].drop_duplicates()
        names = ", ".join(f"{f} {m}" for f, m in models.itertuples(index=False))
        notes.append(f"BIG-bench: {len(models)} model(s) without {_SCALE_NAMES.get(scale, scale)} left out: {names}")
        frame = frame[~zero]
        if frame.empty:
            raise MirageInputError(f"no BIG-bench model has a positive {scale!r}", source)
    return frame.assign(scale=frame[scale], x_axis=scale), notes
