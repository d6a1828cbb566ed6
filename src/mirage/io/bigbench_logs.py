"""BIG-bench ``full-log_<family>_<model>.json`` -> sample records.

BIG-bench's ``evaluate_task.py --log_queries`` writes, beside ``scores_*.json``, a full log: the
same ``model`` and ``scores`` plus ``queries``, each a list of ``samples`` of one subtask
(``task``) and shot count (``shots``), in the order of the task's examples:

- ``cond_log_prob`` with ``target_values`` (a multiple-choice query): each option's
  log-probability (``absolute_scores``, else ``scores``) becomes ``choice_logprobs``; the option
  with the highest target value is ``correct_choice``. Re-scoring these with the Brier score is
  the paper's LaMDA experiment, from BIG-bench's own logs.
- ``cond_log_prob`` without them (a scoring query): the first target's log-probability becomes
  ``target_logprob_sum``.
- ``generate_text``: the post-processed ``output`` and the first of the example's targets.

Queries of one subtask and shot count are aligned by position, as BIG-bench's own
``update_json_task_queries`` does, so the i-th sample of a generative and of a multiple-choice
query of a subtask become one record with both the output and the option log-probabilities.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import MirageInputError
from .bigbench_results import check_model, model_sizes, parse_shots
from .models import Tokenizers
from .record_rows import table_from_rows

_COUNTS = ("flop_matched_non_embedding_params", "non_embedding_params", "total_params")
_COLUMN = {
    "total_params": "params",
    "non_embedding_params": "non_embedding_params",
    "flop_matched_non_embedding_params": "flop_matched_non_embedding_params",
}


def read_bigbench_full_log(
    path: str | Path, data: dict, *, scale: str | None = None, tokenizers: Tokenizers | None = None
) -> tuple[pa.Table, list[str]]:
    """One parsed full log -> (record table, notes). ``scale`` None uses flop-matched
    non-embedding parameters (else non-embedding, else total); a named count of 0 leaves the
    file's records out with a note."""
    src = str(path)
    model = check_model(data, src)
    sizes = model_sizes(model, src)
    family, name = model["model_family"].strip(), model["model_name"].strip()
    notes: list[str] = []
    value: float | None
    if scale is None:
        # this model's own best count; read_inputs then makes one axis per family
        # (bigbench_results.family_axes), the same as for the family's score files
        use = next(c for c in _COUNTS if sizes[c] > 0)
        value = sizes[use]
    else:
        key = {v: k for k, v in _COLUMN.items()}.get(scale)
        value = sizes[key] if key else None
        if key and sizes[key] <= 0:
            notes.append(f"{src}: left out, model {family} {name} has no {scale}")
            return pa.table({}), notes
    tokenizers = tokenizers or Tokenizers()
    tokenize = tokenizers.for_model(name)
    queries = data.get("queries")
    if not isinstance(queries, list) or not queries:
        raise MirageInputError("a full log needs a non-empty 'queries' list", src)
    merged: dict[tuple[str, int | None, int], dict[str, Any]] = {}
    shot_counts: dict[str, set[int | None]] = {}
    several_targets = 0
    for qi, query in enumerate(queries):
        where = f"queries[{qi}]"
        if not isinstance(query, dict) or not isinstance(query.get("samples"), list):
            raise MirageInputError(f"{where} needs a 'samples' list", src)
        function = query.get("function")
        named = query.get("task")
        task: str = named if isinstance(named, str) and named else "programmatic"
        shots = parse_shots(query.get("shots", 0), where, src)
        shot_counts.setdefault(task, set()).add(shots)
        for si, sample in enumerate(query["samples"]):
            w = f"{where}.samples[{si}]"
            if not isinstance(sample, dict) or not isinstance(sample.get("input"), str):
                raise MirageInputError(f"{w} needs an 'input' string", src)
            rec = merged.setdefault((task, shots, si), dict(task=task, shots=shots, index=si, prompt=sample["input"]))
            if function == "generate_text":
                targets = sample.get("targets")
                keys = list(targets) if isinstance(targets, dict) else list(targets or [])
                if len(keys) > 1:
                    several_targets += 1
                output = sample.get("output")
                rec["output"] = "" if output is None else str(output)
                rec.setdefault("target", str(keys[0]) if keys else "")
                rec["targets"] = [str(k) for k in keys]
                if sample.get("raw_output") is not None:
                    rec["raw_output"] = str(sample["raw_output"])
            elif function == "cond_log_prob":
                options = sample.get("targets")
                if not isinstance(options, list) or not options:
                    raise MirageInputError(f"{w} needs a non-empty 'targets' list", src)
                scores = sample.get("absolute_scores") or sample.get("scores")
                if not isinstance(scores, list) or len(scores) != len(options):
                    raise MirageInputError(f"{w}: {len(options)} targets but scores {scores!r}", src)
                lps = [_logprob(v, f"{w}.scores", src) for v in scores]
                values = sample.get("target_values")
                if isinstance(values, dict):
                    rec["choices"] = [str(o) for o in options]
                    rec["choice_logprobs"] = lps
                    rec["correct_choice"] = _correct(options, values)
                    if rec["correct_choice"] is not None:
                        rec.setdefault("target", str(options[rec["correct_choice"]]))
                    if isinstance(sample.get("correct"), (int, float)):
                        rec["bigbench_correct"] = float(sample["correct"])
                else:
                    rec["target_logprob_sum"] = lps[0]
                    rec.setdefault("target", str(options[0]))
            else:
                raise MirageInputError(f"{where}: unknown function {function!r} (generate_text or cond_log_prob)", src)
    rows = []
    for (task, shots, si), rec in merged.items():
        several = len(shot_counts[task]) > 1
        target = rec.get("target", "")
        row = dict(
            family=family,
            model=name,
            scale=value,
            bigbench_log=True,
            params=sizes["total_params"],
            non_embedding_params=sizes["non_embedding_params"],
            flop_matched_non_embedding_params=sizes["flop_matched_non_embedding_params"],
            task=task,
            sample_id=f"{si}" if not several else f"{si}@{'na' if shots is None else shots}shot",
            shots=shots,
            prompt=rec["prompt"],
            target=target,
            target_tokens=tokenize(target),
        )
        if "output" in rec:
            row.update(
                output=rec["output"],
                output_tokens=tokenize(rec["output"]),
                raw_output=rec.get("raw_output"),
                targets=rec.get("targets"),
            )
        if "choices" in rec:
            row.update(
                choices=rec["choices"],
                choice_logprobs=rec["choice_logprobs"],
                choice_lengths=[len(tokenize(c)) for c in rec["choices"]],
                correct_choice=rec["correct_choice"],
                bigbench_correct=rec.get("bigbench_correct"),
            )
        if "target_logprob_sum" in rec:
            row["target_logprob_sum"] = rec["target_logprob_sum"]
        rows.append(row)
    if several_targets:
        notes.append(
            f"{src}: {several_targets} generated sample(s) have several targets; exact match and edit "
            "distances use the first (BIG-bench's exact_str_match takes the best)"
        )
    notes.append(f"BIG-bench full logs: token counts and token edit distances are in {tokenizers.describe()}")
    return _table(rows, src), notes


def _logprob(value: Any, what: str, src: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value > 1e-6:
        raise MirageInputError(f"{what} must hold log-probabilities (numbers <= 0), got {value!r}", src)
    return float(value)


def _correct(options: list, values: dict) -> int | None:
    """The option with the unique highest target value (> 0); None when several tie."""
    scored = [float(values.get(str(o), values.get(o, 0)) or 0) for o in options]
    best = max(scored)
    if best <= 0 or scored.count(best) != 1:
        return None
    return scored.index(best)


def _table(rows: list[dict], src: str) -> pa.Table:
    return table_from_rows(rows, src, {"bigbench_correct": pa.float64(), "bigbench_log": pa.bool_()})
