"""Reading BIG-bench results files (``benchmark_tasks/<task>/results/scores_*.json``).

A results file holds one model's scores on one task::

    {"model": {"model_family": "BIG-G T=0", "model_name": "2m", "total_params": 18482048,
               "non_embedding_params": 2098048, "flop_matched_non_embedding_params": 2098048, ...},
     "scores": [{"subtask_description": "arithmetic:1_digit_addition", "number_of_shots": 0,
                 "preferred_score": "multiple_choice_grade",
                 "score_dict": {"multiple_choice_grade": 0.21, "exact_str_match": 0.0, ...}}, ...]}

Entries whose ``preferred_score`` is ``normalized_aggregate_score`` aggregate a task's subtasks;
they are kept as task-level curves and marked ``aggregate=True``.

:func:`read_bigbench_results` turns files or directory trees into the core long score table
(one row per family, model, task, metric, shots) so the same curve code applies:
``family, model, params, non_embedding_params, flop_matched_non_embedding_params, task,
parent_task, subtask, shots, metric, value, preferred, aggregate, metric_kind, source``.
``task`` is the entry's ``subtask_description`` (``arithmetic:1_digit_addition``, or the task
name itself for a task without subtasks or an aggregate), because each is its own curve.
``params`` is ``total_params``; pick another x axis with ``scale=``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import MirageInputError
from .metrics import KNOWN_METRIC_KINDS, canonical_metric_name

AGGREGATE_SCORE = "normalized_aggregate_score"
MODEL_KEYS = ("model_family", "model_name", "total_params", "non_embedding_params",
              "flop_matched_non_embedding_params")
ENTRY_KEYS = ("subtask_description", "number_of_shots", "preferred_score", "score_dict")
SCALE_COLUMNS = {"params": "total_params", "non_embedding_params": "non_embedding_params",
                 "flop_matched_non_embedding_params": "flop_matched_non_embedding_params"}

# BIG-bench metric names the core registry does not know; kinds follow the paper's split
# (log-probabilities are continuous; a probability of the whole target compounds like p**L).
BIGBENCH_METRIC_KINDS = {
    "weighted_log_probabilities": "linear",
    "log_likelihood_per_char": "linear",
    "log_likelihood_per_word": "linear",
    "weighted_probabilities": "nonlinear",
}


def looks_like_bigbench_results(data) -> bool:
    """A parsed JSON document with a ``model`` object and a ``scores`` list."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict) and isinstance(data.get("scores"), list)


def load_json(path: Path):
    """Parse a JSON file; malformed text raises MirageInputError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MirageInputError(f"malformed JSON: {exc.msg} at line {exc.lineno}", str(path)) from None
    except UnicodeDecodeError:
        raise MirageInputError("not a UTF-8 text file", str(path)) from None


def _number(value, what: str, src: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MirageInputError(f"{what} must be a finite number, got {value!r}", src)
    if positive and value <= 0:
        raise MirageInputError(f"{what} must be positive, got {value!r}", src)
    return float(value)


def parse_bigbench_results(data, source: str) -> pd.DataFrame:
    """One parsed results document -> long score table rows (validated)."""
    if not looks_like_bigbench_results(data):
        raise MirageInputError("not a BIG-bench results file (needs a 'model' object and a 'scores' list)", source)
    model = data["model"]
    missing = [k for k in MODEL_KEYS if k not in model]
    if missing:
        raise MirageInputError(f"model is missing {', '.join(map(repr, missing))}", source)
    for key in ("model_family", "model_name"):
        if not isinstance(model[key], str) or not model[key].strip():
            raise MirageInputError(f"model.{key} must be a non-empty string", source)
    # total params is the default x axis and must be usable; the other counts may be 0 in
    # real files (the x axis check then happens only if the user picks them)
    sizes = {"total_params": _number(model["total_params"], "model.total_params", source, positive=True)}
    for key in ("non_embedding_params", "flop_matched_non_embedding_params"):
        sizes[key] = _number(model[key], f"model.{key}", source)
    if not data["scores"]:
        raise MirageInputError("'scores' is empty", source)
    rows = []
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
        shots = entry["number_of_shots"]
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise MirageInputError(f"{where}.number_of_shots must be a non-negative integer, got {shots!r}", source)
        if not isinstance(scores, dict) or not scores:
            raise MirageInputError(f"{where}.score_dict must be a non-empty object", source)
        if preferred not in scores:
            raise MirageInputError(f"{where}: preferred_score {preferred!r} is not in score_dict", source)
        parent, _, sub = desc.partition(":")
        aggregate = preferred == AGGREGATE_SCORE
        for metric, value in scores.items():
            rows.append(dict(
                family=model["model_family"].strip(), model=model["model_name"].strip(),
                params=sizes["total_params"], non_embedding_params=sizes["non_embedding_params"],
                flop_matched_non_embedding_params=sizes["flop_matched_non_embedding_params"],
                task=desc, parent_task=parent, subtask=sub, shots=shots, metric=str(metric),
                value=_number(value, f"{where}.score_dict[{metric!r}]", source),
                preferred=metric == preferred, aggregate=aggregate,
                metric_kind=_bigbench_kind(str(metric)), source=source,
            ))
    return pd.DataFrame(rows)


def _bigbench_kind(metric: str):
    """Kind for names only BIG-bench uses; None lets the core registry decide."""
    name = canonical_metric_name(metric)
    return None if name in KNOWN_METRIC_KINDS else BIGBENCH_METRIC_KINDS.get(name)


def read_bigbench_file(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return parse_bigbench_results(load_json(path), str(path))


def bigbench_files(root: str | Path) -> list[Path]:
    """Every ``*.json`` under ``root`` (recursively) that is not hidden or ``_``-prefixed."""
    root = Path(root)
    return sorted(f for f in root.rglob("*.json") if f.is_file()
                  and not any(p.startswith((".", "_")) for p in f.relative_to(root).parts))


def read_bigbench_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Files and directory trees of BIG-bench results -> one long score table.

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
    frame = pd.concat([read_bigbench_file(f) for f in files], ignore_index=True)
    key = ["family", "model", "task", "metric", "shots"]
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        clash = frame[dup].sort_values(key + ["source"]).iloc[:2]
        first = clash.iloc[0]
        raise MirageInputError(
            f"{first['family']} {first['model']} {first['task']} {first['metric']} ({first['shots']}-shot) "
            f"is also in {clash.iloc[1]['source']}", str(first["source"]))
    return frame
