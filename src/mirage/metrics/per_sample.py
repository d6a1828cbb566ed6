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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from ..errors import MirageInputError
from ..schema.answers import answer_matches
from .registry import METRICS, Metric, PerTokenLoss, register_metric
from .view import RecordView


def _negated(v: np.ndarray) -> np.ndarray:
    return -v


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _ones(v: np.ndarray) -> np.ndarray:
    return np.ones_like(v)


# a log-probability per token is minus the per-token loss; its rank among one task's loss scales
MEAN_LOGPROB_LOSS = PerTokenLoss(_negated, _ones, rank=0)


# the characters Python's str.strip() removes from an ASCII string (\x1c-\x1f included)
_ASCII_WHITESPACE = "".join(c for c in map(chr, range(128)) if c.isspace())


def _stripped(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(the strings with surrounding whitespace removed as ``str.strip`` removes it, which rows
    are ASCII): in Arrow for ASCII strings; a non-ASCII row is left for the caller to strip in
    Python, whose idea of Unicode whitespace Arrow does not share exactly."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    ascii_rows = pc.fill_null(pc.string_is_ascii(arr), False).to_numpy(zero_copy_only=False)
    return pc.utf8_trim(arr, characters=_ASCII_WHITESPACE), ascii_rows


def _stripped_column(v: RecordView, column: str) -> tuple[pa.Array, np.ndarray]:
    """:func:`_stripped` of a whole column, once per view (exact match and char edit distance)."""
    return v.memo(f"strip:{column}", lambda: _stripped(v.table.column(column)))


def _exact_match(v: RecordView) -> np.ndarray:
    out = np.full(v.n, np.nan)
    output = v.table.column("output").combine_chunks()
    target = v.table.column("target").combine_chunks()
    has_output = ~np.asarray(output.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    regex_rows = np.zeros(v.n, dtype=bool)
    if "output_regex" in v.table.column_names:
        rx = v.table.column("output_regex").combine_chunks()
        regex_rows = pc.fill_null(pc.greater(pc.utf8_length(rx), 0), False).to_numpy(zero_copy_only=False)
    if v.answer_regex:
        regex_rows = np.ones(v.n, dtype=bool)
    out_s, out_ascii = _stripped_column(v, "output")
    tgt_s, tgt_ascii = _stripped_column(v, "target")
    # the common case in Arrow: no answer extraction, ASCII text
    fast = has_output & ~regex_rows & out_ascii & tgt_ascii
    if fast.any():
        same = pc.fill_null(pc.equal(out_s, tgt_s), False).to_numpy(zero_copy_only=False)
        out[fast] = same[fast].astype(float)
    slow = np.flatnonzero(has_output & ~fast)
    if len(slow):
        take = pa.array(slow)
        outputs = output.take(take).to_pylist()
        targets = target.take(take).to_pylist()
        regexes = (
            v.table.column("output_regex").combine_chunks().take(take).to_pylist()
            if "output_regex" in v.table.column_names
            else [None] * len(slow)
        )
        default = re.compile(v.answer_regex) if v.answer_regex else None
        compiled: dict[str, re.Pattern[str]] = {}
        for i, o, t, r in zip(slow, outputs, targets, regexes):
            rx = default
            if r:
                rx = compiled.setdefault(r, re.compile(r))
            out[i] = float(answer_matches(o, t, rx))
    return out


def _levenshtein(a_col: str, b_col: str, v: RecordView, strip: bool = False) -> np.ndarray:
    a_arr = v.table.column(a_col).combine_chunks()
    b_arr = v.table.column(b_col).combine_chunks()
    ok = ~np.asarray(a_arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) & ~np.asarray(
        b_arr.is_null().to_numpy(zero_copy_only=False), dtype=bool
    )
    out = np.full(v.n, np.nan)
    if not ok.any():
        return out
    idx = np.flatnonzero(ok)
    if len(idx) < v.n:
        take = pa.array(idx)
        a_arr, b_arr = a_arr.take(take), b_arr.take(take)
    if pa.types.is_list(a_arr.type):
        a, b = _token_strings(a_arr, b_arr)
    elif strip and len(idx) == v.n:  # every row: the stripped columns exact match made
        a, b = _texts(a_arr, strip, _stripped_column(v, a_col)), _texts(b_arr, strip, _stripped_column(v, b_col))
    else:
        a, b = _texts(a_arr, strip), _texts(b_arr, strip)
    out[idx] = cpdist(a, b, scorer=Levenshtein.distance, workers=-1)
    return out


def _texts(arr: pa.Array, strip: bool, stripped: tuple[pa.Array, np.ndarray] | None = None) -> list[str]:
    """Python strings, stripped as ``str.strip`` strips (surrounding whitespace of a generation is
    formatting, not an error); ``stripped``: :func:`_stripped` of ``arr``, if made already."""
    if not strip:
        return arr.to_pylist()
    trimmed, ascii_rows = stripped if stripped is not None else _stripped(arr)
    texts = trimmed.to_pylist()
    if not ascii_rows.all():
        raw = arr.to_pylist()
        for i in np.flatnonzero(~ascii_rows):
            texts[i] = raw[i].strip()
    return texts


# token codes become characters: one per distinct token, the surrogate range left out
_SURROGATES = 0xD800
_MAX_TOKENS = 0x10FFFF - 0x800


def _token_strings(a: pa.Array, b: pa.Array) -> tuple[list[Any], list[Any]]:
    """Two columns of token lists as strings with one character per distinct token, so that the
    Levenshtein distance of two strings is that of the token sequences (a bijection of tokens),
    computed in C on strings instead of on Python lists of tokens. Inputs with more distinct
    tokens than there are characters fall back to the lists."""
    flat = pa.chunked_array([a.flatten(), b.flatten()]).combine_chunks()
    codes = flat.dictionary_encode(null_encoding="encode")
    if len(codes.dictionary) >= _MAX_TOKENS:
        return a.to_pylist(), b.to_pylist()
    indices = codes.indices.to_numpy(zero_copy_only=False)
    n_a = len(a.flatten())
    a_at = a.offsets.to_numpy() - a.offsets[0].as_py()
    b_at = b.offsets.to_numpy() - b.offsets[0].as_py() + n_a
    if len(codes.dictionary) < 0x7F:  # every code an ASCII character: one byte each
        buffer = pa.py_buffer((indices + 1).astype(np.uint8))
        return _utf8_strings(a_at, buffer), _utf8_strings(b_at, buffer)
    cp = indices.astype(np.uint32) + 1
    cp = np.where(cp >= _SURROGATES, cp + 0x800, cp).astype("<u4")
    data = cp.tobytes().decode("utf-32-le").encode("utf-8")
    # each row's characters as UTF-8 bytes: Arrow builds the Python strings (no slicing loop)
    width = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
    byte_at = np.concatenate([[0], np.cumsum(width)])
    a_off = byte_at[a_at]
    b_off = byte_at[b_at]
    buffer = pa.py_buffer(data)
    return _utf8_strings(a_off, buffer), _utf8_strings(b_off, buffer)


def _utf8_strings(offsets: np.ndarray, data: pa.Buffer) -> list[Any]:
    """Python strings of the UTF-8 ``data`` between consecutive ``offsets``."""
    if offsets[-1] < 2**31:
        arr = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), data)
    else:
        arr = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), data)
    return arr.to_pylist()


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
    """(correct option's summed log-prob, best other option's, rows that have both), once per view."""
    return v.memo("correct_and_best_other", lambda: _correct_and_best_other_of(v))


def _correct_and_best_other_of(v: RecordView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    """Tokens of the correct option (NaN when unknown), once per view."""
    return v.memo("correct_choice_length", lambda: _correct_choice_length_of(v))


def _correct_choice_length_of(v: RecordView) -> np.ndarray:
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
        flat = lens_col.flatten().to_numpy(zero_copy_only=False).astype(float)
        width = mat.shape[1]
        if len(flat) == v.n * width and bool((lk == width).all()):  # every row fills the matrix
            lens = np.where(flat > 0, flat, 1.0).reshape(v.n, width)
        else:
            lens = np.ones_like(mat)
            rows = np.repeat(np.arange(v.n), lk)
            cols = np.arange(len(flat)) - np.repeat(np.cumsum(lk) - lk, lk)
            keep = cols < width
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


for _m in (
    Metric(
        "exact_match",
        "discontinuous",
        True,
        _exact_match,
        ("output", "target"),
        binary=True,
        description="output equals target after stripping and optional answer extraction",
        partners=("token_edit_distance", "target_logprob", "target_mean_logprob", "char_edit_distance"),
        zero_floor=True,
        compounds=True,
    ),
    Metric(
        "multiple_choice_grade",
        "discontinuous",
        True,
        _multiple_choice_grade,
        ("choice_logprobs", "correct_choice"),
        binary=True,
        description="the correct option has the (unique) highest summed log-probability",
        # the paper re-scores multiple choice with the Brier score; the margin is the decision's own scale
        partners=("brier_score", "choice_margin", "target_mean_logprob", "target_logprob"),
        same_as_tool=True,
    ),
    Metric(
        "token_edit_distance",
        "linear",
        False,
        _token_edit_distance,
        ("output_tokens", "target_tokens"),
        description="Levenshtein distance between output and target token sequences",
    ),
    Metric(
        "char_edit_distance",
        "linear",
        False,
        _char_edit_distance,
        ("output", "target"),
        description="Levenshtein distance between the stripped output and target strings",
    ),
    Metric(
        "target_logprob",
        "linear",
        True,
        _target_logprob,
        ("target_logprobs",),
        description="teacher-forced log-probability of the whole target (sum over tokens)",
        per_token_loss=PerTokenLoss(_negated, _ones, rank=11),
    ),  # summed over the target: loss x length
    Metric(
        "target_mean_logprob",
        "linear",
        True,
        _target_mean_logprob,
        ("target_logprobs",),
        description="mean per-token log-probability of the target",
        probability_scale=np.exp,
        per_token_loss=MEAN_LOGPROB_LOSS,
    ),
    Metric(
        "target_prob",
        "nonlinear",
        True,
        _target_prob,
        ("target_logprobs",),
        description="probability of the whole target, exp(sum of token log-probs) ~ p**L",
        # p ** L compounds per-token probabilities; its logarithm is the continuous version
        partners=("target_logprob", "target_mean_logprob", "token_edit_distance"),
    ),
    Metric(
        "brier_score",
        "linear",
        False,
        _brier_score,
        ("choice_logprobs", "correct_choice"),
        description="multi-class Brier score of the softmax over option log-probabilities",
        same_as_tool=True,
    ),
    Metric(
        "choice_margin",
        "linear",
        True,
        _choice_margin,
        ("choice_logprobs", "correct_choice"),
        description="correct option's summed log-probability minus the best other option's (nats); "
        "multiple-choice grade is [margin > 0]",
    ),
    Metric(
        "choice_token_loss",
        "linear",
        False,
        _choice_token_loss,
        ("choice_logprobs", "correct_choice"),
        description="-log softmax of per-token option log-probabilities at the correct option: the "
        "margin's per-token loss scale",
        per_token_loss=PerTokenLoss(_identity, _ones, rank=1),
    ),
    Metric(
        "correct_choice_mean_logprob",
        "linear",
        True,
        _correct_choice_mean_logprob,
        ("choice_logprobs", "choice_lengths", "correct_choice"),
        description="mean per-token log-probability of the correct option",
        per_token_loss=PerTokenLoss(_negated, _ones, rank=2),
    ),
    Metric(
        "target_mean_token_prob",
        "linear",
        True,
        _target_mean_token_prob,
        ("target_logprobs",),
        description="mean over target tokens of their probability: the token accuracy of sampling",
    ),
):
    register_metric(_m)

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
    table: pa.Table,
    names: Sequence[str] | None = None,
    answer_regex: str | None = None,
    *,
    present: frozenset[str] | None = None,
) -> pd.DataFrame:
    """Per-sample metric values (wide: one column per metric) with the record keys.

    Columns: family, model, scale, task, sample_id, [shots], target_length, then one column per
    metric. Metrics whose inputs a record lacks are NaN for that record. ``present``: the columns
    with values anywhere in the input when ``table`` is one part of it (the same metrics and
    columns for every part, as for the whole).
    """
    view = RecordView(table, answer_regex, present)
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
        compute = METRICS[name].compute
        assert compute is not None  # METRICS holds the metrics that have a per-sample function
        frame[name] = compute(view)
    return frame
