# ruff: noqa: B023
"""Per-sample metrics computed from records, and their entries in the metric registry.

Every metric here is a function of a :class:`~mirage.metrics.view.RecordView` returning one value
per record (NaN where a record lacks what it needs), so the same fixed model outputs are scored
with every metric without rerunning a model:

>>> from mirage.schema.records import records_from_rows
>>> rows = [dict(family="f", model="m", scale=1e6, task="t", sample_id=str(i), target="12", output=out,
...              target_tokens=["1", "2"], output_tokens=list(out), target_logprobs=[-0.1, -0.2])
...         for i, out in enumerate(["12", "13"])]
>>> frame = compute_sample_metrics(records_from_rows(rows), ["exact_match", "token_edit_distance"])
>>> frame[["exact_match", "token_edit_distance"]].values.tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from mirage.errors import MirageInputError
from mirage.metrics.registry import METRICS

from .view import RecordView


def _negated(v: np.ndarray) -> np.ndarray:
    return -v


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _ones(v: np.ndarray) -> np.ndarray:
    return np.ones_like(v)


# a log-probability per token is minus the per-token loss; its rank among one task's loss scales


def _normalise_answer(text: str | None, regex: re.Pattern | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if regex is not None:
        m = regex.search(text)
        if m is None:
            return ""
        text = (m.group(1) if m.groups() else m.group(0)).strip()
    return text


def _exact_match(v: RecordView) -> np.ndarray:
    outputs = v.strings("output")
    targets = v.strings("target")
    regexes = v.strings("output_regex") if "output_regex" in v.table.column_names else [None] * v.n
    default = re.compile(v.answer_regex) if v.answer_regex else None
    compiled: dict[str, re.Pattern] = {}
    out = np.full(v.n, np.nan)
    for i, (o, t) in enumerate(zip(outputs, targets)):
        if o is None:
            continue
        rx = default
        if regexes[i]:
            rx = compiled.setdefault(regexes[i], re.compile(regexes[i]))
        # the target is only stripped: it is the reference answer, not text to search
        out[i] = float(_normalise_answer(o, rx) == (t or "").strip())
    return out


def _levenshtein(a_col: str, b_col: str, v: RecordView, strip: bool = False) -> np.ndarray:
    a = v.strings(a_col)
    b = v.strings(b_col)
    if strip:  # surrounding whitespace of a generation is formatting, not an error
        a = [x.strip() if x is not None else None for x in a]
        b = [x.strip() if x is not None else None for x in b]
    ok = np.array([x is not None and y is not None for x, y in zip(a, b)], dtype=bool)
    out = np.full(v.n, np.nan)
    if ok.any():
        idx = np.flatnonzero(ok)
        out[idx] = cpdist([a[i] for i in idx], [b[i] for i in idx], scorer=Levenshtein.distance, workers=1)
    return out


def _token_edit_distance(v: RecordView) -> np.ndarray:
    return _levenshtein("output_tokens", "target_tokens", v)


def _char_edit_distance(v: RecordView) -> np.ndarray:
    return _levenshtein("output", "target", v, strip=True)


def _target_logprob(v: RecordView) -> np.ndarray:
    return v.list_sums("target_logprobs")


def _target_mean_logprob(v: RecordView) -> np.ndarray:
    n = v.target_token_counts()  # also counts the tokens of a sum-only row (lm-eval log-likelihoods)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, v.list_sums("target_logprobs") / n, np.nan)


def _target_prob(v: RecordView) -> np.ndarray:
    return np.exp(v.list_sums("target_logprobs"))


def _choice_softmax(v: RecordView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mat, k = v.choice_matrix()
    correct = v.correct_choice()
    ok = (k > 0) & np.isfinite(correct) & (correct >= 0) & (correct < np.maximum(k, 1))
    # log-sum-exp in log space: choice log-probs of long options are very negative
    m = np.max(mat, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    probs = np.exp(mat - m)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, np.where(ok, correct, 0).astype(np.int64), ok


def _multiple_choice_grade(v: RecordView) -> np.ndarray:
    mat, k = v.choice_matrix()
    correct = v.correct_choice()
    ok = (k > 0) & np.isfinite(correct)
    best = np.argmax(mat, axis=1)
    # ties count as wrong unless the right option is the unique maximum
    top = mat.max(axis=1)
    n_top = (mat == top[:, None]).sum(axis=1)
    right = (best == np.nan_to_num(correct, nan=-1)) & (n_top == 1)
    return np.where(ok, right.astype(float), np.nan)


def _correct_and_best_other(v: RecordView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct option's summed log-prob, best other option's, rows that have both)."""
    mat, k = v.choice_matrix()
    correct = v.correct_choice()
    ok = (k > 1) & np.isfinite(correct) & (correct >= 0) & (correct < np.maximum(k, 1))
    idx = np.where(ok, correct, 0).astype(np.int64)
    rows = np.arange(v.n)
    right = mat[rows, idx]
    others = mat.copy()
    others[rows, idx] = -np.inf
    return right, others.max(axis=1), ok & np.isfinite(right)


def _choice_margin(v: RecordView) -> np.ndarray:
    # the decision-relevant margin: multiple-choice grade is exactly [margin > 0]
    right, other, ok = _correct_and_best_other(v)
    with np.errstate(invalid="ignore"):
        return np.where(ok, right - other, np.nan)


def _correct_choice_length(v: RecordView) -> np.ndarray:
    """Tokens of the correct option (NaN when unknown)."""
    lengths = v.table.column("choice_lengths").combine_chunks()
    k = np.nan_to_num(v.list_lengths("choice_lengths"), nan=0).astype(np.int64)
    correct = v.correct_choice()
    ok = (k > 0) & np.isfinite(correct) & (correct >= 0) & (correct < np.maximum(k, 1))
    flat = lengths.flatten().to_numpy(zero_copy_only=False).astype(float)
    starts = np.cumsum(k) - k
    pos = np.where(ok, starts + np.where(ok, correct, 0).astype(np.int64), 0)
    out = np.full(v.n, np.nan)
    if len(flat):
        out = np.where(ok, flat[np.clip(pos, 0, len(flat) - 1)], np.nan)
    return np.where(out > 0, out, np.nan)


def _correct_choice_mean_logprob(v: RecordView) -> np.ndarray:
    right, _, ok = _correct_and_best_other(v)
    length = _correct_choice_length(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & np.isfinite(length), right / length, np.nan)


def _choice_token_loss(v: RecordView) -> np.ndarray:
    """-log of the correct option's share of a softmax over per-token option log-probabilities.

    Per-token scores (an option's summed log-probability over its length) keep the L-fold
    compounding of long options out: under the paper's model of multiple choice (the correct
    option's tokens have probability p, the wrong options share the rest) this is exactly the
    per-token loss -log p, so it is the margin's per-token loss scale.
    """
    mat, k = v.choice_matrix()
    correct = v.correct_choice()
    ok = (k > 1) & np.isfinite(correct) & (correct >= 0) & (correct < np.maximum(k, 1))
    if v.has("choice_lengths"):
        lens_col = v.table.column("choice_lengths").combine_chunks()
        lk = np.nan_to_num(v.list_lengths("choice_lengths"), nan=0).astype(np.int64)
        lens = np.ones_like(mat)
        flat = lens_col.flatten().to_numpy(zero_copy_only=False).astype(float)
        rows = np.repeat(np.arange(v.n), lk)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lk) - lk, lk)
        keep = cols < mat.shape[1]
        lens[rows[keep], cols[keep]] = np.where(flat[keep] > 0, flat[keep], 1.0)
        ok &= lk == k
    else:
        lens = np.ones_like(mat)
    per_tok = np.where(np.isfinite(mat), mat / lens, -np.inf)
    top = np.max(per_tok, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    lse = np.log(np.sum(np.exp(per_tok - top), axis=1)) + top[:, 0]
    idx = np.where(ok, correct, 0).astype(np.int64)
    return np.where(ok, lse - per_tok[np.arange(v.n), idx], np.nan)


def _target_mean_token_prob(v: RecordView) -> np.ndarray:
    """Mean over target tokens of exp(log p): the token accuracy of sampling from the model."""
    col = v.table.column("target_logprobs").combine_chunks()
    lengths = v.list_lengths("target_logprobs")
    lens = np.nan_to_num(lengths, nan=0).astype(np.int64)
    flat = np.exp(col.flatten().to_numpy(zero_copy_only=False).astype(float))
    out = np.full(v.n, np.nan)
    has = lens > 0
    if has.any():
        starts = (np.cumsum(lens) - lens)[has]
        out[has] = np.add.reduceat(flat, starts) / lens[has]
    return out


def _brier_score(v: RecordView) -> np.ndarray:
    probs, correct, ok = _choice_softmax(v)
    onehot = np.zeros_like(probs)
    onehot[np.arange(v.n), correct] = 1.0
    score = np.sum((probs - onehot) ** 2, axis=1)
    return np.where(ok, score, np.nan)


def _target_length(v: RecordView) -> np.ndarray:
    return v.list_lengths("target_tokens")


OLD_COMPUTE = {
    "exact_match": _exact_match,
    "multiple_choice_grade": _multiple_choice_grade,
    "token_edit_distance": _token_edit_distance,
    "char_edit_distance": _char_edit_distance,
    "target_logprob": _target_logprob,
    "target_mean_logprob": _target_mean_logprob,
    "target_prob": _target_prob,
    "brier_score": _brier_score,
    "choice_margin": _choice_margin,
    "choice_token_loss": _choice_token_loss,
    "correct_choice_mean_logprob": _correct_choice_mean_logprob,
    "target_mean_token_prob": _target_mean_token_prob,
}


# every record metric, in the order curves and tables list them
DEFAULT_METRICS = tuple(METRICS)


def available_metrics(view: RecordView, names: Sequence[str] | None = None) -> list[str]:
    """Metrics whose required columns the records have (all requested ones must exist)."""
    if names:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise MirageInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}", "--metrics")
        return list(names)
    return [n for n, m in METRICS.items() if all(view.has(c) for c in m.requires)]


def compute_sample_metrics(
    table: pa.Table, names: Sequence[str] | None = None, answer_regex: str | None = None
) -> pd.DataFrame:
    """Per-sample metric values (wide: one column per metric) with the record keys.

    Columns: family, model, scale, task, sample_id, [shots], target_length, then one column per
    metric. Metrics whose inputs a record lacks are NaN for that record.
    """
    view = RecordView(table, answer_regex)
    chosen = available_metrics(view, names)
    keys = ["family", "model", "scale", "task", "sample_id"] + (["shots"] if "shots" in table.column_names else [])
    frame = table.select(keys).to_pandas()
    frame["target_length"] = _target_length(view)
    if view.has("choice_logprobs"):  # chance level of multiple choice is 1 / n_choices
        frame["n_choices"] = view.list_lengths("choice_logprobs")
    if view.has("choice_lengths") and view.has("correct_choice"):
        frame["correct_choice_length"] = _correct_choice_length(view)
    for name in chosen:
        missing = [c for c in METRICS[name].requires if not view.has(c)]
        if missing:
            raise MirageInputError(f"metric {name!r} needs column(s) {', '.join(missing)}", "records")
        frame[name] = OLD_COMPUTE[name](view)
    return frame
