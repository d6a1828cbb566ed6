"""lm-evaluation-harness 0.4.x sample logs (``--log_samples``) -> sample records.

lm-eval writes, per model, a folder named after the sanitised model path (a local checkpoint
``/tmp/ckpt/m`` gives ``__tmp__ckpt__m``) holding ``results_<date>.json`` and one
``samples_<task>_<date>.jsonl`` per task. Each sample line has the ``doc``, the requests'
``arguments``, the raw ``resps`` and the ``filtered_resps`` of one answer filter, and the
per-sample metric values. What each output type becomes:

- ``multiple_choice``: ``choices`` (each option's continuation as scored), ``choice_logprobs``
  (lm-eval's summed log-likelihood of each option), ``choice_lengths`` and ``correct_choice``,
  so ``multiple_choice_grade`` and ``brier_score`` are computed exactly as lm-eval's ``acc``
  (argmax of the option log-likelihoods) and ``brier_score`` (squared distance between the
  softmax over options and the one-hot answer, summed over options, averaged over samples);
  mirage counts a tie for the highest log-likelihood as wrong where lm-eval's ``argmax`` takes
  the first option.
- ``generate_until``: ``output`` is the filtered answer of the line's filter (the raw
  generation is kept as ``raw_output``), ``target`` the reference; one task per filter
  (``task`` for the filter ``none``, ``task[filter]`` for the others), so exact match and edit
  distances score what lm-eval scored.
- ``loglikelihood`` and ``loglikelihood_rolling``: the continuation (or the whole document) is
  the ``target`` and its summed log-likelihood ``target_logprob_sum``; ``target_is_greedy``
  keeps lm-eval's ``is_greedy``.

lm-eval keeps one *summed* log-likelihood per request and no per-token values, so from these
logs mirage cannot compute per-token log-probabilities of targets (the ``target_logprobs``
lists), log-probabilities of generated answers (no ``target_logprob`` for generation tasks), or
exact match of log-likelihood requests against a generated output. Per-token means divide the
sum by the number of target tokens: the model's tokens with ``--tokenizer``, else characters
(said in the notes). Token edit distances count the same units.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import MirageInputError
from .lm_eval_results import family_from_name, lm_eval_scale, model_name
from .models import ScaleTable, Tokenize, Tokenizers
from .record_rows import table_from_rows
from .tables import load_json

SAMPLE_KEYS = frozenset({"doc_id", "doc", "arguments", "resps", "filtered_resps"})
OUTPUT_TYPES = ("multiple_choice", "generate_until", "loglikelihood", "loglikelihood_rolling")
LIMITS_NOTE = (
    "lm-eval sample logs keep one summed log-likelihood per request, no per-token values: target "
    "log-probabilities of generation tasks and per-token target_logprobs cannot be computed from them"
)


def looks_like_lm_eval_samples(row: Any) -> bool:
    """A parsed line of a ``samples_*.jsonl`` file written by lm-eval 0.4.x."""
    return isinstance(row, dict) and SAMPLE_KEYS <= set(row)


def sniff_jsonl(path: Path) -> Any:
    """The first non-empty line of a JSONL file, parsed (None when it is not JSON)."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # not an lm-eval log; the records reader reports the problem with its line
    return None


def samples_name_parts(path: Path) -> tuple[str, str] | None:
    """``samples_<task>_<date>.jsonl`` -> (task, date); None for other names. The date
    (``2024-05-01T12-00-00.123456``) has no underscore; a task name may."""
    stem = path.stem
    if not stem.startswith("samples_") or stem.count("_") < 2:
        return None
    rest = stem[len("samples_") :]
    task, _, date = rest.rpartition("_")
    return (task, date) if task and date else None


def results_beside(path: Path) -> Path | None:
    """The ``results_<date>.json`` lm-eval wrote with a samples file, if it is there."""
    parts = samples_name_parts(path)
    if parts is None:
        return None
    candidate = path.with_name(f"results_{parts[1]}.json")
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class LmEvalModel:
    """Who a samples file is about: from the results file beside it, else the folder name."""

    family: str
    model: str
    scale: float
    results: dict
    notes: tuple[str, ...] = ()


def _model_of(
    path: Path, *, family: str | None, scale: str, scale_from: str | None, scale_table: ScaleTable | None
) -> LmEvalModel:
    results_path = results_beside(path)
    notes: list[str] = []
    if results_path is not None:
        data = load_json(results_path)
        model = model_name(data) or results_path.stem
    else:
        data = {}
        # lm-eval's folder name is the model path with '/' written as '__'
        model = path.parent.name.split("__")[-1] or path.stem
        notes.append(f"{path}: no results file beside it; model {model!r} taken from the folder name")
    fam = family or family_from_name(model)
    value = lm_eval_scale(data, model, scale, scale_from, scale_table, str(results_path or path))
    return LmEvalModel(fam, model, value, data, tuple(notes))


def read_lm_eval_samples(
    path: str | Path,
    *,
    family: str | None = None,
    scale: str = "params",
    scale_from: str | None = None,
    scale_table: ScaleTable | None = None,
    tokenizers: Tokenizers | None = None,
) -> tuple[pa.Table, list[str]]:
    """One ``samples_<task>_<date>.jsonl`` -> (record table, notes).

    The family, model and scale come from the ``results_<date>.json`` beside it (the same
    rules as for the results themselves), so records and results of one run line up.
    """
    path = Path(path)
    src = str(path)
    parts = samples_name_parts(path)
    lines = _read_lines(path)
    who = _model_of(path, family=family, scale=scale, scale_from=scale_from, scale_table=scale_table)
    task = parts[0] if parts else path.stem
    config = _task_config(who.results, task)
    shots = _shots(who.results, task, config)
    tokenizers = tokenizers or Tokenizers()
    aliases = _model_aliases(who.results)
    tokenize = tokenizers.for_model(who.model, *aliases)
    output_type = config.get("output_type") if isinstance(config.get("output_type"), str) else None
    rows: list[dict] = []
    notes = list(who.notes)
    multi_target = 0
    for lineno, sample in lines:
        kind = output_type or _infer_output_type(sample)
        where = f"line {lineno}"
        base = dict(
            family=who.family,
            model=who.model,
            scale=who.scale,
            task=task,
            sample_id=str(sample["doc_id"]),
            shots=shots,
            answer_filter=str(sample.get("filter", "none")),
            lm_eval_output_type=kind,
        )
        base.update(_logged_metrics(sample))
        if kind == "multiple_choice":
            row = _multiple_choice(sample, config, tokenize, where, src)
            if row.get("correct_choice") is None:
                multi_target += 1
        elif kind == "generate_until":
            row = _generation(sample, tokenize, where, src)
            if base["answer_filter"] != "none":
                base["task"] = f"{task}[{base['answer_filter']}]"
        elif kind == "loglikelihood":
            row = _loglikelihood(sample, tokenize, where, src)
        elif kind == "loglikelihood_rolling":
            row = _rolling(sample, tokenize, where, src)
        else:
            raise MirageInputError(
                f"{where}: unknown lm-eval output type {kind!r} (known: {', '.join(OUTPUT_TYPES)})", src
            )
        base.update(row)
        rows.append(base)
    if multi_target:
        notes.append(
            f"{src}: {multi_target} multiple-choice sample(s) have more than one correct option; "
            "records hold one correct_choice, so they count in no multiple-choice metric"
        )
    unit = tokenizers.describe()
    notes.append(f"lm-eval samples: token counts and token edit distances are in {unit}")
    notes.append(LIMITS_NOTE)
    return _table(rows, src), notes


def _read_lines(path: Path) -> list[tuple[int, dict]]:
    out = []
    try:
        with path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MirageInputError(f"line {lineno}: malformed JSON ({exc.msg})", str(path)) from None
                if not looks_like_lm_eval_samples(row):
                    raise MirageInputError(
                        f"line {lineno}: not an lm-eval sample (needs {', '.join(sorted(SAMPLE_KEYS))})", str(path)
                    )
                out.append((lineno, row))
    except UnicodeDecodeError:
        raise MirageInputError("not a UTF-8 text file", str(path)) from None
    if not out:
        raise MirageInputError("empty file", str(path))
    return out


def _task_config(results: dict, task: str) -> dict:
    configs = results.get("configs")
    cfg = configs.get(task) if isinstance(configs, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def _shots(results: dict, task: str, config: dict) -> int:
    n_shot = results.get("n-shot")
    value = n_shot.get(task) if isinstance(n_shot, dict) else None
    if value is None:
        value = config.get("num_fewshot")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def _model_aliases(results: dict) -> tuple[str, ...]:
    cfg = results.get("config")
    args = cfg.get("model_args") if isinstance(cfg, dict) else None
    if isinstance(args, dict):
        return tuple(str(v) for k, v in args.items() if k in ("pretrained", "model", "path") and v)
    if isinstance(args, str):
        return tuple(
            v.strip()
            for k, _, v in (p.partition("=") for p in args.split(","))
            if k.strip() in ("pretrained", "model", "path") and v.strip()
        )
    return ()


def _args(sample: dict) -> list[dict]:
    args = sample["arguments"]
    if isinstance(args, dict):  # 0.4.x writes {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        return [
            args[k]
            for k in sorted(
                args, key=lambda k: int(str(k).rsplit("_", 1)[-1]) if str(k).rsplit("_", 1)[-1].isdigit() else 0
            )
        ]
    if isinstance(args, list):  # older writers: a list of argument lists
        return [
            {f"arg_{i}": a for i, a in enumerate(item)} if isinstance(item, (list, tuple)) else {"arg_0": item}
            for item in args
        ]
    raise MirageInputError("'arguments' is neither an object nor a list", "lm-eval samples")


def _infer_output_type(sample: dict) -> str:
    args = _args(sample)
    if args and all(isinstance(a.get("arg_1"), dict) for a in args):
        return "generate_until"
    if len(args) == 1 and "arg_1" not in args[0]:
        return "loglikelihood_rolling"
    metrics = set(sample.get("metrics") or ())
    if len(args) > 1 or metrics & {"acc_norm", "brier_score", "acc_mutual_info", "mcc", "f1"}:
        return "multiple_choice"
    return "loglikelihood"


def _number(value: Any, what: str, where: str, src: str) -> float:
    try:
        x = float(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError, IndexError):
        raise MirageInputError(f"{where}: {what} is not a number ({value!r})", src) from None
    if math.isnan(x) or x > 1e-6:
        raise MirageInputError(f"{where}: {what} must be a log-probability (<= 0), got {value!r}", src)
    return x


def _flag(value: Any) -> bool | None:
    if isinstance(value, (list, tuple)):
        value = value[1] if len(value) > 1 else None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return None


def _logged_metrics(sample: dict) -> dict:
    """lm-eval's own per-sample values (scalars only), kept as ``lm_eval_<metric>``."""
    out = {}
    for name in sample.get("metrics") or ():
        v = sample.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"lm_eval_{name}"] = float(v)
    return out


def _multiple_choice(sample: dict, config: dict, tokenize: Tokenize, where: str, src: str) -> dict:
    args = _args(sample)
    resps = sample["filtered_resps"]
    if not isinstance(resps, list) or len(resps) != len(args):
        raise MirageInputError(
            f"{where}: {len(args)} requests but {len(resps) if isinstance(resps, list) else 0} responses", src
        )
    k = len(args)
    # acc_mutual_info appends one unconditional request ("", option) per option
    if (
        k % 2 == 0
        and k > 2
        and all(str(a.get("arg_0", "")) == "" for a in args[k // 2 :])
        and [a.get("arg_1") for a in args[: k // 2]] == [a.get("arg_1") for a in args[k // 2 :]]
    ):
        k //= 2
        args, resps = args[:k], resps[:k]
    choices = [str(a.get("arg_1", "")) for a in args]
    lls = [_number(r, f"option {i} log-likelihood", where, src) for i, r in enumerate(resps)]
    gold = _gold(sample, choices, lls, config, where, src)
    row: dict[str, Any] = dict(
        prompt=str(args[0].get("arg_0", "")),
        choices=choices,
        choice_logprobs=lls,
        choice_lengths=[len(tokenize(c)) for c in choices],
    )
    if isinstance(gold, int):
        row["correct_choice"] = gold
        row["target"] = choices[gold]
    else:
        row["correct_choice"] = None
        row["target"] = str(sample.get("target", ""))
    return row


def _choice_index(text: str, choices: list[str], delimiter: str | None) -> int | None:
    for i, c in enumerate(choices):
        bare = c[len(delimiter) :] if delimiter and c.startswith(delimiter) else c
        if text in (c, bare) or text.strip() == c.strip():
            return i
    return None


def _gold(sample: dict, choices: list[str], lls: list[float], config: dict, where: str, src: str) -> int | None:
    """Index of the correct option, exactly as lm-eval decided it (None: several are right).

    In order: the gold index lm-eval logged with ``brier_score``; the document field named by
    ``doc_to_target`` (an int is an index, a string an option); the logged target, which
    lm-eval turns into an index when it is all digits and otherwise looks up among the options.
    The candidate must agree with the logged per-sample ``acc`` (argmax == gold)."""
    k = len(choices)
    delimiter = config.get("target_delimiter") if isinstance(config.get("target_delimiter"), str) else " "
    candidates: list[Any] = []
    bs = sample.get("brier_score")
    if isinstance(bs, list) and len(bs) == 2 and isinstance(bs[0], int) and not isinstance(bs[0], bool):
        candidates.append(bs[0])
    doc = sample.get("doc")
    field = config.get("doc_to_target")
    if isinstance(field, str) and isinstance(doc, dict) and field in doc:
        v = doc[field]
        if isinstance(v, bool):
            pass
        elif isinstance(v, int):
            candidates.append(v)
        elif isinstance(v, str):
            candidates.append(_choice_index(v, choices, delimiter))
        elif isinstance(v, list):
            candidates.append(v)
    elif isinstance(field, int) and not isinstance(field, bool):
        candidates.append(field)
    target = sample.get("target")
    if isinstance(target, str):
        t = target.strip()
        if t.isdigit() and int(t) < k:
            candidates.append(int(t))
        idx = _choice_index(target, choices, delimiter)
        if idx is not None:
            candidates.append(idx)
        if t.startswith("[") and t.endswith("]"):
            try:
                parsed = json.loads(t)
                if isinstance(parsed, list) and all(isinstance(x, int) for x in parsed):
                    candidates.append(parsed)
            except json.JSONDecodeError:
                pass
    pred = int(np.argmax(lls))
    acc = sample.get("acc")
    for c in candidates:
        if c is None:
            continue
        if isinstance(c, list):
            if all(isinstance(x, int) and 0 <= x < k for x in c) and (acc is None or float(acc) == float(pred in c)):
                return c[0] if len(set(c)) == 1 else None
            continue
        if 0 <= c < k and (acc is None or float(acc) == float(pred == c)):
            return int(c)
    raise MirageInputError(
        f"{where}: cannot tell which of the {k} options is correct (target {target!r}"
        + (f", logged acc {acc}" if acc is not None else "")
        + ")",
        src,
    )


def _generation(sample: dict, tokenize: Tokenize, where: str, src: str) -> dict:
    args = _args(sample)
    filtered = sample["filtered_resps"]
    output = filtered[0] if isinstance(filtered, list) and filtered else filtered
    if isinstance(output, list):  # a filter that keeps several answers (take_first_k): the first
        output = output[0] if output else ""
    raw = sample.get("resps")
    while isinstance(raw, list) and raw:
        raw = raw[0]
    target = sample.get("target")
    target = "" if target is None else str(target)
    output = "" if output is None else str(output)
    return dict(
        prompt=str(args[0].get("arg_0", "")) if args else "",
        output=output,
        raw_output=raw if isinstance(raw, str) else None,
        target=target,
        target_tokens=tokenize(target),
        output_tokens=tokenize(output),
    )


def _loglikelihood(sample: dict, tokenize: Tokenize, where: str, src: str) -> dict:
    args = _args(sample)
    if len(args) != 1:
        raise MirageInputError(f"{where}: a log-likelihood sample has {len(args)} requests (expected 1)", src)
    resp = sample["filtered_resps"][0] if isinstance(sample["filtered_resps"], list) else sample["filtered_resps"]
    target = str(args[0].get("arg_1", ""))
    return dict(
        prompt=str(args[0].get("arg_0", "")),
        target=target,
        target_tokens=tokenize(target),
        target_logprob_sum=_number(resp, "log-likelihood", where, src),
        target_is_greedy=_flag(resp),
    )


def _rolling(sample: dict, tokenize: Tokenize, where: str, src: str) -> dict:
    args = _args(sample)
    resp = sample["filtered_resps"][0] if isinstance(sample["filtered_resps"], list) else sample["filtered_resps"]
    text = str(args[0].get("arg_0", "")) if args else str(sample.get("target", ""))
    return dict(
        prompt="",
        target=text,
        target_tokens=tokenize(text),
        target_logprob_sum=_number(resp, "log-likelihood", where, src),
    )


def _table(rows: list[dict], src: str) -> pa.Table:
    return table_from_rows(rows, src, {"target_is_greedy": pa.bool_(), "raw_output": pa.string()})
