"""Inspect (inspect-ai) evaluation logs, ``.eval`` and ``.json`` -> sample records.

The log is read with inspect-ai's own ``read_eval_log`` (the optional extra
``pip install 'mirage[inspect]'``), so every log format Inspect writes is read as Inspect
reads it. Each sample (and epoch) becomes one record:

- ``prompt``: the sample input (the text of its messages when the input is a conversation);
- ``target``: the sample target (the first one when there are several; all kept in ``targets``);
- ``output``: the completion, tokenised (``--tokenizer``, else characters) for edit distances;
- ``score_<scorer>``: each per-sample score as a number, through Inspect's own
  ``value_to_float`` (``C`` = 1, ``I`` = 0, ``P`` = 0.5; a dict-valued score gives one column per
  key); the scorer's answer is kept as ``answer_<scorer>``;
- ``output_token_logprobs`` / ``output_logprob_tokens``: the log-probabilities and tokens of the
  generated completion where the log has them (the model was asked for ``logprobs``).

Those are log-probabilities of what the model *generated*, not teacher-forced log-probabilities
of the target, so target log-probability metrics are not computed from Inspect logs (run the
model with ``mirage eval`` for those). A log does not say how large its model is: the scale
comes from ``--scale-from`` (a CSV or a family YAML), else a size in the model name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from ..errors import MirageInputError
from .lm_eval_results import family_from_name, params_from_name
from .models import ScaleTable, Tokenizers
from .record_rows import table_from_rows

EXTRA_LINE = "reading Inspect logs needs inspect-ai: pip install 'mirage[inspect]'"
LIMITS_NOTE = (
    "Inspect logs hold log-probabilities of generated tokens only (kept as output_token_logprobs), "
    "not of targets: target log-probability metrics are not computed from them"
)


def looks_like_inspect_log(data: Any) -> bool:
    """A parsed ``.json`` Inspect log: an ``eval`` object naming its task and model."""
    ev = data.get("eval") if isinstance(data, dict) else None
    return isinstance(ev, dict) and "task" in ev and "model" in ev and ("version" in data or "status" in data)


def _read_log(path: Path) -> Any:
    try:
        from inspect_ai.log import read_eval_log  # optional heavy dependency (mirage[inspect])
    except ImportError:
        raise MirageInputError(EXTRA_LINE, str(path)) from None
    try:
        return read_eval_log(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure of the reader is this one bad input
        first = str(exc).strip().splitlines()
        raise MirageInputError(
            f"not a readable Inspect log: {first[0] if first else type(exc).__name__}", str(path)
        ) from None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a conversation: the text of every message, in order
        return "\n".join(getattr(m, "text", str(m)) for m in value)
    return "" if value is None else str(value)


def _scale(model: str, ref: str, scale: str, scale_from: str | None, scale_table: ScaleTable | None, src: str) -> float:
    if scale_table is not None:
        return scale_table.lookup(model, scale, ref)
    if scale == "params" and scale_from in (None, "name"):
        value = params_from_name(model)
        if value is not None:
            return value
    raise MirageInputError(
        f"an Inspect log does not record the size of model {ref!r}: pass --scale-from FILE.csv "
        f"(columns model, {scale}) or a family YAML",
        src,
    )


def read_inspect_log(
    path: str | Path,
    *,
    family: str | None = None,
    scale: str = "params",
    scale_from: str | None = None,
    scale_table: ScaleTable | None = None,
    tokenizers: Tokenizers | None = None,
) -> tuple[pa.Table, list[str]]:
    """One Inspect log -> (record table, notes)."""
    path = Path(path)
    src = str(path)
    log = _read_log(path)  # first: without inspect-ai installed, the one line naming the extra
    from inspect_ai.scorer import value_to_float  # optional heavy dependency (mirage[inspect])

    ref = str(log.eval.model)
    model = ref.rstrip("/").split("/")[-1]
    fam = family or family_from_name(model)
    value = _scale(model, ref, scale, scale_from, scale_table, src)
    tokenizers = tokenizers or Tokenizers()
    tokenize = tokenizers.for_model(model, ref)
    task = str(log.eval.task).split("/")[-1]
    notes: list[str] = []
    if log.status != "success":
        notes.append(f"{src}: the run's status is {log.status!r}; its finished samples are read")
    samples = log.samples or []
    if not samples:
        raise MirageInputError("the log holds no samples (was it written with log_samples=False?)", src)
    to_float = value_to_float()
    epochs = {s.epoch for s in samples}
    rows = []
    with_logprobs = 0
    for s in samples:
        target = s.target if isinstance(s.target, str) else (s.target[0] if s.target else "")
        output = s.output.completion if s.output is not None else ""
        row: dict[str, Any] = dict(
            family=fam,
            model=model,
            scale=value,
            task=task,
            sample_id=str(s.id) if len(epochs) == 1 else f"{s.id}#epoch{s.epoch}",
            prompt=_text(s.input),
            target=str(target),
            output=str(output),
            target_tokens=tokenize(str(target)),
            output_tokens=tokenize(str(output)),
            targets=[str(t) for t in s.target] if isinstance(s.target, list) else None,
            epoch=int(s.epoch),
            inspect_model=ref,
        )
        for name, score in (s.scores or {}).items():
            row.update(_score_columns(name, score, to_float))
        choice = s.output.choices[0] if s.output is not None and s.output.choices else None
        if choice is not None and choice.logprobs is not None and choice.logprobs.content:
            lps = [float(lp.logprob) for lp in choice.logprobs.content]
            if any(not math.isfinite(x) or x > 1e-6 for x in lps):
                raise MirageInputError(f"sample {s.id!r}: token log-probabilities must be finite and <= 0", src)
            row["output_token_logprobs"] = lps
            row["output_logprob_tokens"] = [str(lp.token) for lp in choice.logprobs.content]
            with_logprobs += 1
        rows.append(row)
    notes.append(f"Inspect logs: token edit distances are in {tokenizers.describe()}")
    if with_logprobs:
        notes.append(LIMITS_NOTE)
    return _table(rows, src), notes


def _score_columns(name: str, score: Any, to_float: Callable[[Any], float]) -> dict[str, Any]:
    value = getattr(score, "value", score)
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, v in value.items():
            out[f"score_{name}_{key}"] = _as_float(v, to_float)
    else:
        out[f"score_{name}"] = _as_float(value, to_float)
    answer = getattr(score, "answer", None)
    if answer is not None:
        out[f"answer_{name}"] = str(answer)
    return out


def _as_float(value: Any, to_float: Callable[[Any], float]) -> float | None:
    if isinstance(value, (list, dict)):
        return None
    try:
        x = float(to_float(value))
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _table(rows: list[dict], src: str) -> pa.Table:
    types: dict[str, pa.DataType] = {
        "output_token_logprobs": pa.list_(pa.float64()),
        "output_logprob_tokens": pa.list_(pa.string()),
        "epoch": pa.int64(),
    }
    for row in rows:
        for name in row:
            if name.startswith("score_"):
                types[name] = pa.float64()
            elif name.startswith("answer_"):
                types[name] = pa.string()
    return table_from_rows(rows, src, types)
