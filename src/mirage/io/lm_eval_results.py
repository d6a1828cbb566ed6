"""lm-evaluation-harness results files (``results_*.json``, old and 0.4.x formats) as score rows,
and what a model's name says about its family and size."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MirageInputError
from .models import ScaleTable, read_scale_table
from .scores import normalize_score_table
from .tables import load_json

# lm-eval results keys that are not metrics (0.4.x writes them beside the metric values)
LM_EVAL_NON_METRICS = frozenset(
    {"alias", "name", "sample_len", "sample_count", "samples", "num_fewshot", "version", "group", "task", " "}
)


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
    """``pythia-1.4b-deduped`` -> ``pythia-deduped``: the name without its size and precision tags."""
    base = name.rstrip("/").split("/")[-1]
    fam = _SIZE.sub("", base.replace("_", "-"))
    # precision tags name a checkpoint format, not a different family
    fam = re.sub(r"-(bf16|fp16|fp32|float16|bfloat16|float32|int8|int4)(?=-|$)", "", fam, flags=re.IGNORECASE)
    fam = re.sub(r"-{2,}", "-", fam).strip("-.")
    return fam or base


def model_args(data: dict) -> str | None:
    """``config.model_args`` of an lm-eval results file as one ``k=v,...`` string, or None."""
    cfg = data.get("config")
    args = cfg.get("model_args") if isinstance(cfg, dict) else None
    if isinstance(args, dict):
        args = ",".join(f"{k}={v}" for k, v in args.items())
    return args if isinstance(args, str) else None


def model_name(data: dict) -> str | None:
    """The model's name from ``model_name`` or the model arguments' ``pretrained``/``model``/``path``."""
    if isinstance(data.get("model_name"), str) and data["model_name"]:
        return data["model_name"].rstrip("/").split("/")[-1]
    args = model_args(data)
    if args:
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
    ``n-samples``, ``higher_is_better`` and ``config.model_num_parameters``. A metric with an
    answer filter other than ``none`` is named ``metric[filter]`` (``exact_match[first-number]``)
    and has the kind of ``metric``; ``higher_is_better`` is taken from the file; keys that are
    not metrics (``alias``, ``sample_len``, ...) are ignored. The scale comes from
    ``scale_from``: ``config`` (model_num_parameters), ``name`` (a size like 70m or 1.4b in the
    model name), or a CSV / family YAML (see :mod:`mirage.io.models`); by default config, then
    name.
    """
    path = Path(path)
    src = str(path)
    table = read_scale_table(scale_from) if scale_from not in (None, "config", "name") else None
    frame = lm_eval_rows(load_json(path), src, family=family, scale=scale, scale_from=scale_from, scale_table=table)
    return normalize_score_table(frame, src, scale=scale)


def _check_mapping(data: dict, key: str, src: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MirageInputError(f"{key!r} must be an object (task -> value), got {type(value).__name__}", src)
    return value


def lm_eval_rows(
    data: Any,
    src: str,
    *,
    family: str | None = None,
    scale: str = "params",
    scale_from: str | None = None,
    scale_table: ScaleTable | None = None,
) -> pd.DataFrame:
    """Parsed lm-eval results -> raw score rows (validated by :func:`normalize_score_table`)."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise MirageInputError("not an lm-evaluation-harness results file (no 'results' object)", src)
    cfg = _check_mapping(data, "config", src)
    n_shot = _check_mapping(data, "n-shot", src)
    n_samples = _check_mapping(data, "n-samples", src)
    higher = _check_mapping(data, "higher_is_better", src)
    model = model_name(data) or Path(src).stem
    fam = family or family_from_name(model)
    default_shots = cfg.get("num_fewshot")
    rows = []
    for task, metrics in data["results"].items():
        if not isinstance(metrics, dict):
            raise MirageInputError(f"results[{task!r}] is not an object", src)
        shots = n_shot.get(task, default_shots)
        shots = int(shots) if isinstance(shots, (int, float)) and not isinstance(shots, bool) and shots >= 0 else 0
        n = None
        ns = n_samples.get(task)
        if isinstance(ns, dict):
            n = ns.get("effective") or ns.get("original")
        given = higher.get(task)
        task_higher: dict[str, Any] = given if isinstance(given, dict) else {}
        for key, value in metrics.items():
            name, _, filt = str(key).partition(",")
            if name.endswith("_stderr") or name in LM_EVAL_NON_METRICS:
                continue
            if task_higher and name not in task_higher:
                continue  # the file lists its metrics in higher_is_better: anything else is not one
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            stderr = metrics.get(f"{name}_stderr" + (f",{filt}" if filt else ""))
            # lm-eval writes "N/A" where it computed no standard error
            stderr = float(stderr) if isinstance(stderr, (int, float)) and not isinstance(stderr, bool) else math.nan
            metric = name if not filt or filt == "none" else f"{name}[{filt}]"
            hib = task_higher.get(name)
            rows.append(
                dict(
                    family=fam,
                    model=model,
                    task=task,
                    metric=metric,
                    value=float(value),
                    stderr=stderr,
                    shots=shots,
                    n_samples=n,
                    higher_is_better=bool(hib) if isinstance(hib, bool) else None,
                    source=src,
                )
            )
    if not rows:
        raise MirageInputError("no numeric results", src)
    frame = pd.DataFrame(rows)
    if frame["higher_is_better"].isna().all():
        frame = frame.drop(columns="higher_is_better")
    step = revision_step(data)
    if step is not None:
        frame["step"] = step
    frame[scale] = lm_eval_scale(data, model, scale, scale_from, scale_table, src)
    return frame


def revision_step(data: dict) -> float | None:
    """``revision=step143000`` in the model arguments -> 143000.0 (Pythia's checkpoints)."""
    found = re.search(r"revision=step(\d+)", model_args(data) or "")
    return float(found.group(1)) if found else None


def lm_eval_scale(
    data: dict, model: str, scale: str, scale_from: str | None, scale_table: ScaleTable | None, src: str
) -> float:
    """The scale of an lm-eval run: from ``--scale-from`` (a table, ``config`` or ``name``), by
    default ``config.model_num_parameters`` and then a size in the model name."""
    config = data.get("config")
    cfg: dict[str, Any] = config if isinstance(config, dict) else {}
    if scale_table is not None:
        aliases = []
        args = model_args(data) or ""
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() in ("pretrained", "model", "path") and v.strip():
                aliases.append(v.strip())
        return scale_table.lookup(model, scale, *aliases)
    if scale == "step":
        step = revision_step(data)
        if step is None:
            raise MirageInputError(
                "no checkpoint step (revision=stepN in the model arguments); "
                "give steps with --scale-from FILE.csv (columns model, step)",
                src,
            )
        return step
    if scale != "params":
        raise MirageInputError(
            f"lm-eval results carry no {scale!r}; give it with --scale-from FILE.csv (columns model, {scale})", src
        )
    if scale_from in (None, "config"):
        value = cfg.get("model_num_parameters") or data.get("model_num_parameters")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
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
