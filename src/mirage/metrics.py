"""Metrics: per-sample functions over records, and the kinds of known score-table names.

A metric's **kind** says how it responds to a smooth improvement in per-token probability p:

- ``discontinuous``: a step per sample (exact match, multiple-choice grade, acc). Averages of
  steps over a finite test set look sudden on a log-scale axis.
- ``nonlinear``: continuous but compounding over tokens, like ``p ** L`` (target probability).
- ``linear``: changes about linearly with per-token log-probability or per-token error (token
  edit distance, log-probability, Brier score, and perplexity-like scores, which are smooth
  monotone transforms of the per-token loss). These are the *continuous* metrics of the paper.

Verdicts pair a discontinuous or nonlinear curve with a linear one on the same outputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import MirageInputError
from .records import list_lengths

KINDS = ("discontinuous", "nonlinear", "linear")
# records column with a target's summed log-probability where per-token values are unknown
SUM_COLUMN = "target_logprob_sum"
SHARP_KINDS = ("discontinuous", "nonlinear")
CONTINUOUS_KINDS = ("linear",)


class RecordView:
    """Lazily computed, cached per-sample arrays of a record table (pyarrow)."""

    def __init__(self, table: pa.Table, answer_regex: str | None = None):
        self.table = table
        self.n = table.num_rows
        self.answer_regex = answer_regex
        self._cache: dict[str, np.ndarray] = {}

    def _cached(self, key: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _has_column(self, column: str) -> bool:
        return column in self.table.column_names and self.table.column(column).null_count < self.n

    def has(self, column: str) -> bool:
        if column == "target_logprobs" and self._has_column(SUM_COLUMN):
            return True  # summed log-probabilities stand in where per-token values are unknown
        return self._has_column(column)

    # -- list helpers -----------------------------------------------------------------------
    def list_lengths(self, column: str) -> np.ndarray:
        """Length of each list (NaN for null lists)."""
        return self._cached(f"len:{column}", lambda: list_lengths(self.table.column(column)))

    def target_token_counts(self) -> np.ndarray:
        """Tokens behind each target log-probability: the length of ``target_logprobs``, or, for
        a row that has only ``target_logprob_sum``, of ``target_tokens`` (NaN when neither)."""

        def f():
            lengths = self.list_lengths("target_logprobs")
            if self._has_column(SUM_COLUMN):
                use = np.isnan(lengths) & np.isfinite(self._sum_column())
                lengths = np.where(use, self.list_lengths("target_tokens"), lengths)
            return lengths

        return self._cached("target_token_counts", f)

    def _sum_column(self) -> np.ndarray:
        v = self.table.column(SUM_COLUMN).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(v, dtype=float)

    def list_sums(self, column: str) -> np.ndarray:
        """Sum of each numeric list (NaN for null lists, 0 for empty ones), row by row.

        Each row is reduced on its own (``np.add.reduceat`` over the row starts), never through
        a cumulative sum across rows, so one extreme value stays in its own row. For
        ``target_logprobs``, rows with a null list take ``target_logprob_sum`` when present."""

        def f():
            col = self.table.column(column).combine_chunks()
            lengths = list_lengths(self.table.column(column))
            flat = col.flatten().to_numpy(zero_copy_only=False).astype(float)
            lens = np.nan_to_num(lengths, nan=0).astype(np.int64)
            sums = np.zeros(self.n)
            filled = lens > 0
            if filled.any():
                starts = (np.cumsum(lens) - lens)[filled]
                sums[filled] = np.add.reduceat(flat, starts)
            sums = np.where(np.isnan(lengths), np.nan, sums)
            if column == "target_logprobs" and self._has_column(SUM_COLUMN):
                sums = np.where(np.isnan(lengths), self._sum_column(), sums)
            return sums

        return self._cached(f"sum:{column}", f)

    def choice_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows × max_choices) log-prob matrix padded with -inf, and the number of choices."""

        def f():
            col = self.table.column("choice_logprobs").combine_chunks()
            lengths = np.nan_to_num(self.list_lengths("choice_logprobs"), nan=0).astype(np.int64)
            width = int(lengths.max()) if len(lengths) else 0
            mat = np.full((self.n, max(width, 1)), -np.inf)
            flat = col.flatten().to_numpy(zero_copy_only=False).astype(float)
            rows = np.repeat(np.arange(self.n), lengths)
            starts = np.cumsum(lengths) - lengths
            cols = np.arange(len(flat)) - np.repeat(starts, lengths)
            mat[rows, cols] = flat
            return mat

        mat = self._cached("choice_matrix", f)
        return mat, np.nan_to_num(self.list_lengths("choice_logprobs"), nan=0).astype(np.int64)

    def correct_choice(self) -> np.ndarray:
        v = self.table.column("correct_choice").to_numpy(zero_copy_only=False)
        return np.asarray(pd.array(v, dtype="Float64").to_numpy(dtype=float, na_value=np.nan))

    def strings(self, column: str) -> list:
        return self._cached(f"str:{column}", lambda: self.table.column(column).to_pylist())


# ------------------------------------------------------------------------------ per-sample functions


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
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cpdist

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


@dataclass(frozen=True)
class Metric:
    """A named per-sample metric over records."""

    name: str
    kind: str
    higher_is_better: bool
    compute: Callable[[RecordView], np.ndarray] = field(repr=False)
    requires: tuple[str, ...]
    binary: bool = False
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric kind must be one of {KINDS}, got {self.kind!r}")


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (later registrations replace earlier ones)."""
    METRICS[metric.name] = metric
    return metric


for _m in (
    Metric("exact_match", "discontinuous", True, _exact_match, ("output", "target"), binary=True,
           description="output equals target after stripping and optional answer extraction"),
    Metric("multiple_choice_grade", "discontinuous", True, _multiple_choice_grade,
           ("choice_logprobs", "correct_choice"), binary=True,
           description="the correct option has the (unique) highest summed log-probability"),
    Metric("token_edit_distance", "linear", False, _token_edit_distance, ("output_tokens", "target_tokens"),
           description="Levenshtein distance between output and target token sequences"),
    Metric("char_edit_distance", "linear", False, _char_edit_distance, ("output", "target"),
           description="Levenshtein distance between the stripped output and target strings"),
    Metric("target_logprob", "linear", True, _target_logprob, ("target_logprobs",),
           description="teacher-forced log-probability of the whole target (sum over tokens)"),
    Metric("target_mean_logprob", "linear", True, _target_mean_logprob, ("target_logprobs",),
           description="mean per-token log-probability of the target"),
    Metric("target_prob", "nonlinear", True, _target_prob, ("target_logprobs",),
           description="probability of the whole target, exp(sum of token log-probs) ~ p**L"),
    Metric("brier_score", "linear", False, _brier_score, ("choice_logprobs", "correct_choice"),
           description="multi-class Brier score of the softmax over option log-probabilities"),
    Metric("choice_margin", "linear", True, _choice_margin, ("choice_logprobs", "correct_choice"),
           description="correct option's summed log-probability minus the best other option's (nats); "
                       "multiple-choice grade is [margin > 0]"),
    Metric("choice_token_loss", "linear", False, _choice_token_loss, ("choice_logprobs", "correct_choice"),
           description="-log softmax of per-token option log-probabilities at the correct option: the "
                       "margin's per-token loss scale"),
    Metric("correct_choice_mean_logprob", "linear", True, _correct_choice_mean_logprob,
           ("choice_logprobs", "choice_lengths", "correct_choice"),
           description="mean per-token log-probability of the correct option"),
    Metric("target_mean_token_prob", "linear", True, _target_mean_token_prob, ("target_logprobs",),
           description="mean over target tokens of their probability: the token accuracy of sampling"),
):
    register_metric(_m)

DEFAULT_METRICS = tuple(METRICS)


def available_metrics(view: RecordView, names=None) -> list[str]:
    """Metrics whose required columns the records have (all requested ones must exist)."""
    if names:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise MirageInputError(
                f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}", "--metrics"
            )
        return list(names)
    return [n for n, m in METRICS.items() if all(view.has(c) for c in m.requires)]


def compute_sample_metrics(table: pa.Table, names=None, answer_regex: str | None = None) -> pd.DataFrame:
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
        frame[name] = METRICS[name].compute(view)
    return frame


# ------------------------------------------------------------------------------ score-table names

# name -> (kind, higher_is_better). lm-evaluation-harness and BIG-bench spellings.
KNOWN_METRIC_KINDS: dict[str, tuple[str, bool]] = {
    # discontinuous: a step per sample, averaged
    "acc": ("discontinuous", True),
    "acc_norm": ("discontinuous", True),
    "acc_mutual_info": ("discontinuous", True),
    "exact_match": ("discontinuous", True),
    "exact_str_match": ("discontinuous", True),
    "em": ("discontinuous", True),
    "multiple_choice_grade": ("discontinuous", True),
    "mc1": ("discontinuous", True),
    "mc2": ("linear", True),
    "f1": ("discontinuous", True),
    "mcc": ("discontinuous", True),
    "pct_stereotype": ("discontinuous", False),
    "contains": ("discontinuous", True),
    "numeric_match_with_0_1_relative_error": ("discontinuous", True),
    "case_insensitive_str_match": ("discontinuous", True),
    # nonlinear: continuous but compounding
    "target_prob": ("nonlinear", True),
    # linear / continuous
    "ppl": ("linear", False),
    "perplexity": ("linear", False),
    "word_perplexity": ("linear", False),
    "byte_perplexity": ("linear", False),
    "bits_per_byte": ("linear", False),
    "log_likelihood": ("linear", True),
    "loglikelihood": ("linear", True),
    "log-likelihood": ("linear", True),
    "likelihood_difference": ("linear", False),
    "brier_score": ("linear", False),
    "multiple_choice_brier_score": ("linear", False),
    "expected_calibration_error": ("linear", False),
    "calibration_multiple_choice_brier_score": ("linear", False),
    "bleu": ("linear", True),
    "bleurt": ("linear", True),
    "rouge": ("linear", True),
    "rouge1": ("linear", True),
    "rouge2": ("linear", True),
    "rougel": ("linear", True),
    "rougelsum": ("linear", True),
    "sequence_f1": ("linear", True),
    "chrf": ("linear", True),
    "ter": ("linear", False),
    "macro_f1": ("linear", True),
    "token_edit_distance": ("linear", False),
    "char_edit_distance": ("linear", False),
    "target_logprob": ("linear", True),
    "target_mean_logprob": ("linear", True),
    "normalized_aggregate_score": ("discontinuous", True),
}
for _name, _m in METRICS.items():
    KNOWN_METRIC_KINDS.setdefault(_name, (_m.kind, _m.higher_is_better))


# Per-token loss implied by a continuous metric's value, where it has one: the scale on which the
# paper's model says improvement is a power law in scale (verdicts judge smoothness there).
# name -> (value -> loss, value -> |d loss / d value|) for the delta-method variance.
PER_TOKEN_LOSS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "target_mean_logprob": (lambda v: -v, lambda v: np.ones_like(v)),
    "correct_choice_mean_logprob": (lambda v: -v, lambda v: np.ones_like(v)),
    "choice_token_loss": (lambda v: v, lambda v: np.ones_like(v)),
    "target_logprob": (lambda v: -v, lambda v: np.ones_like(v)),  # summed over the target: loss x length
    "log_likelihood": (lambda v: -v, lambda v: np.ones_like(v)),
    "loglikelihood": (lambda v: -v, lambda v: np.ones_like(v)),
    "log-likelihood": (lambda v: -v, lambda v: np.ones_like(v)),
    "ppl": (np.log, lambda v: 1.0 / v),
    "perplexity": (np.log, lambda v: 1.0 / v),
    "word_perplexity": (np.log, lambda v: 1.0 / v),
    "byte_perplexity": (np.log, lambda v: 1.0 / v),
    "bits_per_byte": (lambda v: v * np.log(2.0), lambda v: np.full_like(v, np.log(2.0))),
}
# preference among them when several continuous metrics of one task have a loss scale
LOSS_PREFERENCE = ("target_mean_logprob", "choice_token_loss", "correct_choice_mean_logprob", "ppl", "perplexity", "word_perplexity",
                   "byte_perplexity", "bits_per_byte", "log_likelihood", "loglikelihood", "log-likelihood",
                   "target_logprob")


def per_token_loss_of(name: str, values, stderr=None) -> tuple[np.ndarray, np.ndarray] | None:
    """(loss, variance of the loss) implied by a continuous metric, or None when it has no loss scale.

    The variance comes from ``stderr`` by the delta method (NaN where unknown).
    """
    entry = PER_TOKEN_LOSS.get(canonical_metric_name(name))
    if entry is None:
        return None
    fn, dfn = entry
    v = np.asarray(values, dtype=float)
    se = np.full_like(v, np.nan) if stderr is None else np.asarray(stderr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = fn(v)
        var = (dfn(v) * se) ** 2
    return loss, var


_FILTER_SUFFIX = re.compile(r"\[[^\[\]]*\]$")


def canonical_metric_name(name: str) -> str:
    """``acc,none`` -> ``acc``; ``Exact_Str_Match`` -> ``exact_str_match``; an lm-eval answer
    filter, as ``exact_match,first-number`` or mirage's ``exact_match[first-number]``, names the
    same metric: ``exact_match``."""
    return _FILTER_SUFFIX.sub("", str(name).split(",")[0].strip()).strip().lower()


def parse_kind_overrides(items) -> dict[str, str]:
    """Parse ``NAME=KIND`` strings from the command line."""
    out: dict[str, str] = {}
    for item in items or ():
        if "=" not in item:
            raise MirageInputError(f"expected NAME=KIND, got {item!r}", "--metric-kind")
        name, kind = (s.strip() for s in item.split("=", 1))
        if kind not in KINDS:
            raise MirageInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", "--metric-kind")
        out[canonical_metric_name(name)] = kind
    return out


def metric_kind(name: str, overrides: dict[str, str] | None = None) -> tuple[str, bool] | None:
    """(kind, higher_is_better) for a metric name, or None when the name is unknown."""
    key = canonical_metric_name(name)
    known = KNOWN_METRIC_KINDS.get(key)
    if overrides and key in overrides:
        higher = known[1] if known else True
        return overrides[key], higher
    return known
