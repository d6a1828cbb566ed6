"""The mathematical model of Schaeffer, Miranda & Koyejo (2023), forward and inverse.

Forward: per-token cross-entropy falls as a power law in parameters N,
``CE(N) = (N / c) ** alpha`` (alpha < 0), so one token is right with probability
``p(N) = exp(-CE(N))`` and, with independent token errors (an approximation the paper states),
a target of L tokens is fully right with probability ``p ** L = exp(-L * CE)``. That nonlinear
metric looks sudden on a log-N axis; the expected token edit distance ``L * (1 - p)`` and the
target log-probability ``-L * CE`` change smoothly.

Multiple choice (K options) under a stated model of the option scores: the correct option's
summed log-probability is ``L log p``; the remaining per-token mass ``1 - p`` is shared evenly by
the K - 1 wrong options, so each scores ``L log((1 - p) / (K - 1))``. The grade (the correct
option strictly on top) is then a step at ``p = 1 / K`` (the paper's 2-option grade is 1 once
p > 0.5), and the multi-class Brier score of the softmax over option scores is
``K / (K - 1) * (1 - q) ** 2`` with q the correct option's softmax probability (for K = 2 and
L = 1, q = p and it is ``2 (1 - p) ** 2``: twice the paper's binary ``(1 - p) ** 2``; the same
multi-class definition as ``mirage.metrics``' ``brier_score``).

Inverse: fit ``(c, alpha)`` to per-token losses of a family by least squares of ``log CE`` on
``log N``, with a seeded bootstrap over models or over samples, and predict exact match (with a
band) for the family's models and for scales it does not have. Everything is computed in log
space; bad input raises :class:`~mirage.errors.MirageInputError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import MirageInputError

# Figure 2 of the paper: alpha = -0.5, c = 2.0e9 (see DESIGN.md, "Facts from the paper").
PAPER_C = 2.0e9
PAPER_ALPHA = -0.5
# With those constants p goes from ~1e-6 at 1e7 parameters to ~0.96 at 1e12: the paper's picture.
DEFAULT_N_MIN = 1.0e7
DEFAULT_N_MAX = 1.0e12

THEORY_COLUMNS = ["params", "length", "cross_entropy", "p_token", "accuracy", "token_edit_distance",
                  "target_logprob", "multiple_choice_grade", "brier_score"]
# kind of each theory curve, in the vocabulary of mirage.metrics (linear = the paper's "continuous")
THEORY_METRIC_KINDS = {
    "cross_entropy": "linear",
    "p_token": "linear",
    "accuracy": "nonlinear",
    "token_edit_distance": "linear",
    "target_logprob": "linear",
    "multiple_choice_grade": "discontinuous",
    "brier_score": "linear",
}
THEORY_HIGHER_IS_BETTER = {"cross_entropy": False, "p_token": True, "accuracy": True, "token_edit_distance": False,
                           "target_logprob": True, "multiple_choice_grade": True, "brier_score": False}
# the columns and order of `mirage analyze`'s emergence.csv, so tools that read one read the other
EMERGENCE_COLUMNS = ["family", "task", "metric", "metric_kind", "n_models", "emergence_score", "flat_then_jump", "shots",
                     "jump_share", "jump_resolved", "jump_at_scale", "higher_is_better", "scale_min", "scale_max",
                     "value_first", "value_last"]

# --------------------------------------------------------------------------- validation


def _positive_array(values, source: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise MirageInputError("must be numbers", source) from None
    if arr.size == 0:
        raise MirageInputError("is empty", source)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise MirageInputError("must be finite and > 0", source)
    return arr


def _lengths_array(values, source: str = "length") -> np.ndarray:
    arr = _positive_array(values, source)
    if np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise MirageInputError("target lengths must be whole numbers >= 1", source)
    return arr


def _check_law(c: float, alpha: float) -> None:
    if not (isinstance(c, (int, float, np.floating, np.integer)) and math.isfinite(c) and c > 0):
        raise MirageInputError(f"must be finite and > 0, got {c!r}", "c")
    if not (isinstance(alpha, (int, float, np.floating, np.integer)) and math.isfinite(alpha) and alpha < 0):
        raise MirageInputError(f"must be finite and < 0 (loss falls with scale), got {alpha!r}", "alpha")


def _check_choices(n_choices: int) -> int:
    if int(n_choices) != n_choices or n_choices < 2:
        raise MirageInputError(f"must be a whole number >= 2, got {n_choices!r}", "n_choices")
    return int(n_choices)


# --------------------------------------------------------------------------- forward model


def cross_entropy(N, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Per-token cross-entropy ``(N / c) ** alpha``, computed as ``exp(alpha (log N - log c))``."""
    _check_law(c, alpha)
    n = _positive_array(N, "N")
    return np.exp(alpha * (np.log(n) - math.log(c)))


def p_token(N, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Probability of one correct token, ``exp(-CE(N))``."""
    return np.exp(-cross_entropy(N, c, alpha))


def accuracy(N, length, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Exact match of an L-token target, ``p ** L`` computed as ``exp(-L CE)`` (broadcasts N with L)."""
    return np.exp(target_logprob(N, length, c, alpha))


def token_edit_distance(N, length, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Expected token edit distance ``L (1 - p)`` with independent token errors (``-expm1`` keeps 1 - p exact)."""
    L = _lengths_array(length)
    return L * -np.expm1(-cross_entropy(N, c, alpha))


def target_logprob(N, length, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Log-probability of the whole target, ``-L CE``."""
    L = _lengths_array(length)
    return -L * cross_entropy(N, c, alpha)


def _choice_log_scores(ce: np.ndarray, L: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct option's summed log-prob, each wrong option's) under the module's stated model."""
    log_p = -ce
    log_1mp = np.log(-np.expm1(-ce))  # log(1 - p) without cancellation near p = 1
    return L * log_p, L * (log_1mp - math.log(K - 1))


def multiple_choice_grade(N, length=1, c: float = PAPER_C, alpha: float = PAPER_ALPHA, n_choices: int = 2) -> np.ndarray:
    """1 where the correct option strictly outscores each of the K - 1 others, i.e. where p > 1/K."""
    K = _check_choices(n_choices)
    L = _lengths_array(length)
    right, wrong = _choice_log_scores(cross_entropy(N, c, alpha), L, K)
    return (right > wrong).astype(float)


def brier_score(N, length=1, c: float = PAPER_C, alpha: float = PAPER_ALPHA, n_choices: int = 2) -> np.ndarray:
    """Multi-class Brier score ``K/(K-1) (1 - q)**2`` of the softmax over option scores (q: correct option)."""
    K = _check_choices(n_choices)
    L = _lengths_array(length)
    right, wrong = _choice_log_scores(cross_entropy(N, c, alpha), L, K)
    log_q = right - np.logaddexp(right, math.log(K - 1) + wrong)
    return K / (K - 1) * np.expm1(log_q) ** 2


def scale_at_accuracy(target: float, length, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Parameters N at which ``p(N) ** L`` equals ``target``: ``c (-log(target) / L) ** (1 / alpha)``.

    Longer targets need a larger model for the same accuracy: the curve moves right as L grows.
    """
    _check_law(c, alpha)
    if not (0 < target < 1):
        raise MirageInputError(f"must be strictly between 0 and 1, got {target!r}", "target accuracy")
    L = _lengths_array(length)
    return np.exp(math.log(c) + (np.log(-math.log(target)) - np.log(L)) / alpha)


@dataclass(frozen=True)
class PowerLaw:
    """``CE(N) = (N / c) ** alpha``: a per-token loss that falls smoothly with scale (alpha < 0)."""

    c: float = PAPER_C
    alpha: float = PAPER_ALPHA

    def __post_init__(self):
        _check_law(self.c, self.alpha)

    def cross_entropy(self, N) -> np.ndarray:
        return cross_entropy(N, self.c, self.alpha)

    def p_token(self, N) -> np.ndarray:
        return p_token(N, self.c, self.alpha)

    def accuracy(self, N, length) -> np.ndarray:
        return accuracy(N, length, self.c, self.alpha)

    def token_edit_distance(self, N, length) -> np.ndarray:
        return token_edit_distance(N, length, self.c, self.alpha)

    def target_logprob(self, N, length) -> np.ndarray:
        return target_logprob(N, length, self.c, self.alpha)

    def multiple_choice_grade(self, N, length=1, n_choices: int = 2) -> np.ndarray:
        return multiple_choice_grade(N, length, self.c, self.alpha, n_choices)

    def brier_score(self, N, length=1, n_choices: int = 2) -> np.ndarray:
        return brier_score(N, length, self.c, self.alpha, n_choices)

    def scale_at_accuracy(self, target: float, length) -> np.ndarray:
        return scale_at_accuracy(target, length, self.c, self.alpha)


def theory_table(law: PowerLaw, lengths: Sequence[int], scales, n_choices: int = 2) -> pd.DataFrame:
    """Every metric of the model at every (scale, length): the tidy table behind ``theory.csv``."""
    n = np.sort(_positive_array(scales, "scales").ravel())
    L = _lengths_array(lengths, "lengths").ravel()
    NN, LL = np.meshgrid(n, L)  # one block of rows per length, scales ascending within it
    NN, LL = NN.ravel(), LL.ravel()
    return pd.DataFrame({
        "params": NN,
        "length": LL.astype(int),
        "cross_entropy": law.cross_entropy(NN),
        "p_token": law.p_token(NN),
        "accuracy": law.accuracy(NN, LL),
        "token_edit_distance": law.token_edit_distance(NN, LL),
        "target_logprob": law.target_logprob(NN, LL),
        "multiple_choice_grade": law.multiple_choice_grade(NN, LL, n_choices),
        "brier_score": law.brier_score(NN, LL, n_choices),
    }, columns=THEORY_COLUMNS)


def theory_emergence(law: PowerLaw, lengths: Sequence[int], n_min: float, n_max: float, n_models: int = 8,
                     n_choices: int = 2) -> pd.DataFrame:
    """Emergence score and jump share of every theory curve, sampled at ``n_models`` log-spaced scales.

    Scores are taken at a family's worth of models (not at the dense plotting grid), because the
    emergence score of a curve depends on how many models sample it.
    """
    from .stats import emergence_score, jump_sharpness

    if n_models < 3:
        raise MirageInputError(f"needs at least 3 models, got {n_models}", "emergence models")
    scales = np.geomspace(n_min, n_max, n_models)
    table = theory_table(law, lengths, scales, n_choices)
    rows = []
    for length, g in table.groupby("length", sort=True):
        for metric, kind in THEORY_METRIC_KINDS.items():
            x, y = g["params"].to_numpy(), g[metric].to_numpy()
            es = emergence_score(x, y)
            sh = jump_sharpness(x, y)
            rows.append(dict(family="theory", task=f"L={int(length)}", metric=metric, metric_kind=kind,
                             n_models=es.n_models, emergence_score=es.score, flat_then_jump=es.flat_then_jump,
                             shots=pd.NA, jump_share=sh.jump_share, jump_resolved=sh.resolved,
                             jump_at_scale=float(x[sh.jump_index]), higher_is_better=THEORY_HIGHER_IS_BETTER[metric],
                             scale_min=float(x.min()), scale_max=float(x.max()), value_first=float(y[0]),
                             value_last=float(y[-1])))
    out = pd.DataFrame(rows, columns=EMERGENCE_COLUMNS)
    out["shots"] = out["shots"].astype("Int64")
    return out


# --------------------------------------------------------------------------- inverse: fitting


@dataclass(frozen=True)
class PowerLawFit:
    """``log CE = intercept + alpha log N`` fitted by least squares, with bootstrap draws.

    ``c = exp(-intercept / alpha)`` exists only for alpha < 0 (NaN otherwise); intervals are
    percentile intervals over the bootstrap draws at ``level``. ``resampling`` says what the
    bootstrap resampled: ``models`` (points of the curve) or ``samples`` (test items, paired
    across models).
    """

    alpha: float
    intercept: float
    alpha_low: float
    alpha_high: float
    c_low: float
    c_high: float
    residual_sd: float
    n_models: int
    resampling: str
    n_boot: int
    level: float
    boot_alpha: np.ndarray = field(repr=False, compare=False)
    boot_intercept: np.ndarray = field(repr=False, compare=False)

    @property
    def c(self) -> float:
        """``exp(-intercept / alpha)``; ``inf`` for a law so flat that its scale constant overflows."""
        if not self.alpha < 0:
            return float("nan")
        log_c = -self.intercept / self.alpha
        return math.exp(log_c) if log_c < 709.0 else float("inf")

    @property
    def law(self) -> PowerLaw:
        return PowerLaw(self.c, self.alpha)

    def cross_entropy(self, N) -> np.ndarray:
        return np.exp(self.intercept + self.alpha * np.log(_positive_array(N, "scale")))

    def boot_cross_entropy(self, N) -> np.ndarray:
        """CE at each scale for every bootstrap draw: shape (n_boot, len(N))."""
        log_n = np.log(_positive_array(N, "scale").ravel())
        return np.exp(self.boot_intercept[:, None] + self.boot_alpha[:, None] * log_n[None, :])

    def as_row(self) -> dict:
        return dict(alpha=self.alpha, alpha_low=self.alpha_low, alpha_high=self.alpha_high, c=self.c,
                    c_low=self.c_low, c_high=self.c_high, residual_sd=self.residual_sd, n_models=self.n_models,
                    resampling=self.resampling, n_boot=self.n_boot, level=self.level)


def _weighted_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares (slope, intercept) of y on x for every row of weights ``w`` (B × M)."""
    y = np.broadcast_to(y, w.shape)
    w = np.where(np.isfinite(y), w, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sw = w.sum(axis=1)
        mx = (w * x).sum(axis=1) / sw
        my = (w * y).sum(axis=1) / sw
        dx = x[None, :] - mx[:, None]
        sxx = (w * dx * dx).sum(axis=1)
        slope = (w * dx * (y - my[:, None])).sum(axis=1) / sxx
        # fewer than two distinct scales: no line (relative test, log N is ~20)
        slope = np.where(sxx > 1e-12 * np.maximum(sw, 1.0), slope, np.nan)
    return slope, my - slope * mx


def _column_ce(means: np.ndarray, kind: str) -> np.ndarray:
    """Per-model CE from column means of per-sample values (``ce`` or per-token ``error`` rates)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "ce":
            ce = means
        else:  # mean token error rate e: p = 1 - e
            ce = -np.log1p(-np.clip(means, 0.0, 1.0))
        return np.where(np.isfinite(ce) & (ce > 0), ce, np.nan)


def fit_power_law(
    scale,
    per_token_ce=None,
    *,
    per_token_error=None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PowerLawFit:
    """Fit ``CE(N) = (N / c) ** alpha`` to a family's per-token losses by least squares in log space.

    ``scale``: one scale per model (M). Give either ``per_token_ce`` or ``per_token_error``
    (per-token error rates, ``1 - p``, e.g. token edit distance / target length), each as
    a length-M vector (one value per model: the bootstrap resamples models) or a samples × models
    matrix (NaN where a model lacks an item: each model's value is its column mean, and the
    bootstrap resamples items, paired across models). Models whose loss is 0 or not finite
    (every token right or wrong) carry no information on the log scale and are left out.
    Seeded: the same input and seed give the same fit and intervals.
    """
    x = _positive_array(scale, "scale").ravel()
    if (per_token_ce is None) == (per_token_error is None):
        raise MirageInputError("give exactly one of per_token_ce and per_token_error", "fit_power_law")
    kind = "ce" if per_token_ce is not None else "error"
    try:
        values = np.asarray(per_token_ce if kind == "ce" else per_token_error, dtype=float)
    except (TypeError, ValueError):
        raise MirageInputError("per-token values must be numbers", "fit_power_law") from None
    if values.ndim not in (1, 2) or values.shape[-1] != len(x):
        raise MirageInputError(f"per-token values must have one column per model ({len(x)}), got shape {values.shape}",
                               "fit_power_law")
    if np.any(np.isinf(values)) and kind == "error":
        raise MirageInputError("error rates must be finite", "fit_power_law")
    if n_boot < 1 or not (0.5 <= level < 1):
        raise MirageInputError("needs n_boot >= 1 and 0.5 <= level < 1", "fit_power_law")
    matrix = values if values.ndim == 2 else values[None, :]
    mask = np.isfinite(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(mask, matrix, 0.0).sum(axis=0) / mask.sum(axis=0)
    ce = _column_ce(means, kind)
    log_x, log_ce = np.log(x), np.log(ce)
    ok = np.isfinite(log_ce)
    if len(np.unique(x[ok])) < 2:
        raise MirageInputError("a power-law fit needs at least two models at different scales with 0 < loss < inf",
                               "fit_power_law")
    slope, intercept = (float(v[0]) for v in _weighted_lines(log_x, log_ce, np.ones((1, len(x)))))
    resid = log_ce[ok] - (intercept + slope * log_x[ok])
    resid_sd = float(np.sqrt(np.sum(resid**2) / max(int(ok.sum()) - 2, 1)))

    rng = np.random.default_rng(seed)
    if values.ndim == 1:
        resampling = "models"
        weights = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x)), size=n_boot).astype(float)
        b_slope, b_int = _weighted_lines(log_x, log_ce, weights)
    else:
        from .stats import bootstrap_counts

        resampling = "samples"
        filled = np.where(mask, matrix, 0.0)
        maskf = mask.astype(float)
        b_slope, b_int = np.empty(n_boot), np.empty(n_boot)
        row = 0
        for counts in bootstrap_counts(matrix.shape[0], n_boot, rng):
            counts = counts.astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                bmeans = (counts @ filled) / (counts @ maskf)
            bce = np.log(_column_ce(bmeans, kind))
            s, i = _weighted_lines(log_x, bce, np.ones_like(bce))
            b_slope[row: row + len(s)], b_int[row: row + len(s)] = s, i
            row += len(s)
    keep = np.isfinite(b_slope) & np.isfinite(b_int)
    b_slope, b_int = b_slope[keep], b_int[keep]
    if len(b_slope) == 0:  # every resample degenerate: no uncertainty can be given
        b_slope, b_int = np.array([slope]), np.array([intercept])
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    a_lo, a_hi = np.quantile(b_slope, q)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        b_c = np.where(b_slope < 0, np.exp(-b_int / b_slope), np.nan)
    c_lo, c_hi = np.nanquantile(b_c, q) if np.isfinite(b_c).any() else (np.nan, np.nan)
    return PowerLawFit(alpha=slope, intercept=intercept, alpha_low=float(a_lo), alpha_high=float(a_hi),
                       c_low=float(c_lo), c_high=float(c_hi), residual_sd=resid_sd, n_models=int(ok.sum()),
                       resampling=resampling, n_boot=int(len(b_slope)), level=level,
                       boot_alpha=b_slope, boot_intercept=b_int)


def _mixture_accuracy(ce: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over a length mixture of ``exp(-L CE)``: ``ce`` (..., S) -> (..., S)."""
    terms = np.exp(-ce[..., None] * lengths)  # lengths (n_lengths,) broadcast over the last axis
    return terms @ weights


def predict_accuracy(fit: PowerLawFit, scale, lengths, level: float | None = None) -> pd.DataFrame:
    """Predicted accuracy ``exp(-L CE_fit(N))`` at every (scale, length), with a bootstrap band.

    Columns: scale, length, cross_entropy, p_token, accuracy, accuracy_low, accuracy_high (band:
    quantiles at ``level`` — the fit's level by default — of the accuracy over bootstrap fits).
    """
    level = fit.level if level is None else level
    n = _positive_array(scale, "scale").ravel()
    L = _lengths_array(lengths, "lengths").ravel()
    ce = fit.cross_entropy(n)
    boot = fit.boot_cross_entropy(n)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    parts = []
    for length in L:
        lo, hi = np.quantile(np.exp(-length * boot), q, axis=0)
        parts.append(pd.DataFrame({"scale": n, "length": int(length), "cross_entropy": ce, "p_token": np.exp(-ce),
                                   "accuracy": np.exp(-length * ce), "accuracy_low": lo, "accuracy_high": hi}))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- inverse: from records

SAMPLE_KEY_COLUMNS = ["family", "model", "scale", "task", "sample_id", "target_length"]
PREDICTION_SOURCES = ("target_mean_logprob", "token_edit_distance")
PREDICTION_COLUMNS = ["family", "task", "shots", "row_kind", "model", "scale", "n_samples", "mean_target_length",
                      "observed_exact_match", "observed_low", "observed_high", "predicted_exact_match",
                      "predicted_low", "predicted_high", "prediction_error", "consistent", "source"]
FIT_COLUMNS = ["family", "task", "shots", "source", "alpha", "alpha_low", "alpha_high", "c", "c_low", "c_high",
               "residual_sd", "n_models", "resampling", "n_boot", "level", "note"]


@dataclass(frozen=True)
class Predictions:
    """What :func:`predict_from_sample_metrics` returns: two tidy tables.

    ``predictions``: one row per (family, task[, shots], model) with ``row_kind="model"``; rows
    with ``row_kind="curve"`` (model empty, observed NaN) trace the predicted curve and band on a
    log-spaced grid for drawing, and ``row_kind="extrapolated"`` rows are the requested scales the
    family does not have. ``fits``: the fitted (c, alpha) with intervals per (family, task[, shots]).
    """

    predictions: pd.DataFrame
    fits: pd.DataFrame


def _check_samples(samples) -> pd.DataFrame:
    if not isinstance(samples, pd.DataFrame):
        raise MirageInputError("expected the per-sample table of mirage.metrics.compute_sample_metrics", "samples")
    missing = [c for c in SAMPLE_KEY_COLUMNS if c not in samples.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(missing)}", "samples")
    if not any(s in samples.columns for s in PREDICTION_SOURCES):
        raise MirageInputError("needs a continuous per-sample metric: target_mean_logprob or token_edit_distance",
                               "samples")
    scale = pd.to_numeric(samples["scale"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise MirageInputError("column 'scale' must be finite and > 0", "samples")
    return samples


def _pick_source(g: pd.DataFrame, source: str) -> str | None:
    if source != "auto":
        return source if source in g.columns and g[source].notna().any() else None
    for name in PREDICTION_SOURCES:
        if name in g.columns and g[name].notna().any():
            return name
    return None


def _per_token_matrix(g: pd.DataFrame, src: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(scales of the models, items × models matrix of per-token loss or error rate, its kind)."""
    length = pd.to_numeric(g["target_length"], errors="coerce")
    if src == "target_mean_logprob":
        vals, kind = -pd.to_numeric(g[src], errors="coerce"), "ce"
    else:  # per-token error rate of the sample; edit distance can exceed the length (insertions)
        vals, kind = (pd.to_numeric(g[src], errors="coerce") / length).clip(upper=1.0), "error"
    frame = pd.DataFrame({"sample_id": g["sample_id"].astype(str), "model": g["model"].astype(str), "v": vals})
    wide = frame.pivot_table(index="sample_id", columns="model", values="v", aggfunc="mean")
    scales = g.groupby(g["model"].astype(str))["scale"].first().reindex(wide.columns).to_numpy(dtype=float)
    return scales, wide.to_numpy(dtype=float), kind


def _group_keys(samples: pd.DataFrame) -> list[str]:
    return ["family", "task"] + (["shots"] if "shots" in samples.columns else [])


def predict_from_sample_metrics(
    samples: pd.DataFrame,
    *,
    source: str = "auto",
    bootstrap: str = "samples",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    extrapolate: Sequence[float] = (),
    n_grid: int = 40,
    progress: bool = False,
) -> Predictions:
    """Predict each model's exact match from a continuous metric of the same outputs.

    ``samples`` is the per-sample table of :func:`mirage.metrics.compute_sample_metrics`
    (family, model, scale, task, sample_id, target_length, [shots], and metric columns). Per
    (family, task[, shots]): each model's per-token loss comes from ``source`` —
    ``target_mean_logprob`` (CE = -mean log p) or ``token_edit_distance`` (per-token error rate
    = distance / length, CE = -log(1 - mean rate)); ``auto`` takes the first present. A power law
    is fitted across models (:func:`fit_power_law`, bootstrap over ``samples`` paired across
    models, or over ``models``), and a model's predicted exact match is the mean over its samples
    of ``exp(-L_i CE_fit(N))`` with each sample's target length L_i; the band holds the
    ``level`` quantiles of that mean over the bootstrap fits. Observed exact match (if the table
    has it) carries a Wilson interval; ``prediction_error`` = predicted - observed, and
    ``consistent`` says whether the observed interval overlaps the predicted band. Groups with
    fewer than two usable models get a fits row with a ``note`` and no predictions.
    Pure: reads nothing, writes nothing; seeded. ``progress`` shows a bar over the groups.
    """
    from .stats import wilson_interval

    samples = _check_samples(samples)
    if source != "auto" and source not in PREDICTION_SOURCES:
        raise MirageInputError(f"unknown source {source!r}; use auto or one of {', '.join(PREDICTION_SOURCES)}",
                               "source")
    if bootstrap not in ("samples", "models"):
        raise MirageInputError(f"must be 'samples' or 'models', got {bootstrap!r}", "bootstrap")
    extra = _positive_array(extrapolate, "extrapolate").ravel() if len(extrapolate) else np.array([])
    keys = _group_keys(samples)
    pred_rows, fit_rows = [], []
    groups = samples.groupby(keys, sort=True, dropna=False)
    if progress:
        from rich.progress import track

        groups = track(groups, total=groups.ngroups, description="predicting exact match")
    for key, g in groups:
        base = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        base.setdefault("shots", pd.NA)
        src = _pick_source(g, source)
        if src is None:
            fit_rows.append(dict(base, source=source, note=f"no {source if source != 'auto' else 'continuous'} metric"))
            continue
        scales, matrix, kind = _per_token_matrix(g, src)
        arg = matrix if bootstrap == "samples" else np.nanmean(matrix, axis=0)
        try:
            fit = fit_power_law(scales, **{"per_token_ce" if kind == "ce" else "per_token_error": arg},
                                n_boot=n_boot, seed=seed, level=level)
        except MirageInputError as exc:
            fit_rows.append(dict(base, source=src, note=str(exc).split(": ", 1)[-1]))
            continue
        fit_rows.append(dict(base, source=src, **fit.as_row(), note=""))
        lengths_all = pd.to_numeric(g["target_length"], errors="coerce")
        mix_l, mix_w = _length_mixture(lengths_all)
        q = [(1 - level) / 2, 1 - (1 - level) / 2]

        def predicted(n):
            point = _mixture_accuracy(fit.cross_entropy(n), mix_l, mix_w)
            lo, hi = np.quantile(_mixture_accuracy(fit.boot_cross_entropy(n), mix_l, mix_w), q, axis=0)
            return point, lo, hi

        for model, m in g.groupby(g["model"].astype(str), sort=False):
            n = float(m["scale"].iloc[0])
            ml, mw = _length_mixture(pd.to_numeric(m["target_length"], errors="coerce"))
            point = float(_mixture_accuracy(fit.cross_entropy([n]), ml, mw)[0])
            band = np.quantile(_mixture_accuracy(fit.boot_cross_entropy([n]), ml, mw)[:, 0], q)
            obs = lo = hi = np.nan
            if "exact_match" in m.columns and m["exact_match"].notna().any():
                em = pd.to_numeric(m["exact_match"], errors="coerce").dropna()
                obs = float(em.mean())
                lo, hi = (float(v) for v in wilson_interval(em.sum(), len(em), level))
            pred_rows.append(dict(base, row_kind="model", model=model, scale=n, n_samples=len(m),
                                  mean_target_length=float(m["target_length"].mean()), observed_exact_match=obs,
                                  observed_low=lo, observed_high=hi, predicted_exact_match=point,
                                  predicted_low=float(band[0]), predicted_high=float(band[1]),
                                  prediction_error=point - obs,
                                  # the band is for the expected value; the observation has its own interval
                                  consistent=bool(lo <= band[1] and band[0] <= hi) if np.isfinite(obs) else pd.NA,
                                  source=src))
        span = np.log10(scales)
        top = max(span.max(), np.log10(extra).max()) if len(extra) else span.max()
        grid = np.geomspace(10 ** (span.min() - 0.1), 10 ** (top + 0.1), n_grid) if n_grid > 0 else np.array([])
        for kind_name, xs in (("curve", grid), ("extrapolated", extra)):
            if not len(xs):
                continue
            point, lo, hi = predicted(xs)
            for n, pt, a, b in zip(xs, point, lo, hi):
                pred_rows.append(dict(base, row_kind=kind_name, model=None, scale=float(n), n_samples=0,
                                      mean_target_length=float(lengths_all.mean()), observed_exact_match=np.nan,
                                      observed_low=np.nan, observed_high=np.nan, predicted_exact_match=float(pt),
                                      predicted_low=float(a), predicted_high=float(b), prediction_error=np.nan,
                                      consistent=pd.NA, source=src))
    preds = pd.DataFrame(pred_rows, columns=PREDICTION_COLUMNS)
    fits = pd.DataFrame(fit_rows, columns=FIT_COLUMNS)
    preds["consistent"] = preds["consistent"].astype("boolean")
    if "shots" not in samples.columns:
        preds, fits = preds.drop(columns="shots"), fits.drop(columns="shots")
    else:
        preds["shots"], fits["shots"] = preds["shots"].astype("Int64"), fits["shots"].astype("Int64")
    return Predictions(predictions=preds, fits=fits)


def _length_mixture(lengths: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(distinct target lengths, their shares) — the mean of exp(-L CE) over samples, grouped by L."""
    counts = lengths.dropna().astype(int).value_counts().sort_index()
    if counts.empty or (counts.index < 1).any():
        raise MirageInputError("target_length must be >= 1 for every sample", "samples")
    return counts.index.to_numpy(dtype=float), (counts / counts.sum()).to_numpy(dtype=float)


def plot_prediction(ax, predictions: pd.DataFrame, colour: str = "C0", label: str | None = None) -> None:
    """Draw one (family, task)'s observed exact match (Wilson bars) with the predicted curve and band."""
    curve = predictions[predictions["row_kind"] == "curve"].sort_values("scale")
    models = predictions[predictions["row_kind"] == "model"].sort_values("scale")
    extra = predictions[predictions["row_kind"] == "extrapolated"].sort_values("scale")
    if len(curve):
        ax.plot(curve["scale"], curve["predicted_exact_match"], "--", color=colour, lw=1.3,
                label=f"{label} predicted" if label else "predicted from continuous metric")
        ax.fill_between(curve["scale"], curve["predicted_low"], curve["predicted_high"], color=colour, alpha=0.12, lw=0)
    obs = models.dropna(subset=["observed_exact_match"])
    if len(obs):
        yerr = np.vstack([obs["observed_exact_match"] - obs["observed_low"], obs["observed_high"] - obs["observed_exact_match"]])
        ax.errorbar(obs["scale"], obs["observed_exact_match"], yerr=np.clip(yerr, 0, None), fmt="o", color=colour,
                    ms=4, capsize=2, label=f"{label} observed" if label else "observed exact match")
    if len(extra):
        ax.errorbar(extra["scale"], extra["predicted_exact_match"],
                    yerr=np.clip(np.vstack([extra["predicted_exact_match"] - extra["predicted_low"],
                                            extra["predicted_high"] - extra["predicted_exact_match"]]), 0, None),
                    fmt="D", mfc="none", color=colour, ms=5, capsize=2, label="extrapolated")
    ax.set_xscale("log")
    ax.set_xlabel("scale")
    ax.set_ylabel("exact match")


# --------------------------------------------------------------------------- target length

LENGTH_COLUMNS = ["family", "task", "shots", "model", "scale", "length", "n_samples", "observed_exact_match",
                  "exact_match_low", "exact_match_high", "observed_token_edit_distance", "token_edit_distance_low",
                  "token_edit_distance_high", "p_token_hat", "predicted_exact_match", "predicted_token_edit_distance",
                  "log_accuracy_slope", "log_p_token_hat", "source"]


def length_analysis(samples: pd.DataFrame, *, source: str = "auto", level: float = 0.95) -> pd.DataFrame:
    """Observed vs predicted exact match and edit distance by target length, per model.

    One row per (family, task[, shots], model, target length): observed exact match with a Wilson
    interval, mean token edit distance with a normal interval, the model's per-token probability
    ``p_hat`` from ``source`` over all its samples (exp of the mean target log-prob, or 1 - mean
    per-token error rate), the theory's ``p_hat ** L`` and ``L (1 - p_hat)``, and per model the
    least-squares slope of log observed exact match on L (lengths with a non-zero exact match),
    which the theory says is ``log p_hat``.
    """
    from .stats import wilson_interval, z_value

    samples = _check_samples(samples)
    keys = _group_keys(samples) + ["model"]
    z = z_value(level)
    rows = []
    for key, m in samples.groupby(keys, sort=True, dropna=False):
        base = dict(zip(keys, key))
        base.setdefault("shots", pd.NA)
        src = _pick_source(m, source)
        p_hat = np.nan
        if src == "target_mean_logprob":
            p_hat = float(np.exp(pd.to_numeric(m[src], errors="coerce").mean()))
        elif src == "token_edit_distance":
            rate = (pd.to_numeric(m[src], errors="coerce") / m["target_length"]).clip(upper=1.0)
            p_hat = float(1.0 - rate.mean())
        group_rows = []
        for length, s in m.groupby("target_length", sort=True):
            em = pd.to_numeric(s["exact_match"], errors="coerce").dropna() if "exact_match" in s else pd.Series([], dtype=float)
            obs = float(em.mean()) if len(em) else np.nan
            lo, hi = (float(v) for v in wilson_interval(em.sum(), len(em), level)) if len(em) else (np.nan, np.nan)
            ted = pd.to_numeric(s["token_edit_distance"], errors="coerce").dropna() if "token_edit_distance" in s else pd.Series([], dtype=float)
            t_mean = float(ted.mean()) if len(ted) else np.nan
            t_half = z * float(ted.std(ddof=1)) / math.sqrt(len(ted)) if len(ted) > 1 else np.nan
            group_rows.append(dict(base, scale=float(s["scale"].iloc[0]), length=int(length), n_samples=len(s),
                                   observed_exact_match=obs, exact_match_low=lo, exact_match_high=hi,
                                   observed_token_edit_distance=t_mean, token_edit_distance_low=t_mean - t_half,
                                   token_edit_distance_high=t_mean + t_half, p_token_hat=p_hat,
                                   predicted_exact_match=p_hat ** int(length) if np.isfinite(p_hat) else np.nan,
                                   predicted_token_edit_distance=int(length) * (1 - p_hat), source=src))
        ls = np.array([r["length"] for r in group_rows], dtype=float)
        acc = np.array([r["observed_exact_match"] for r in group_rows], dtype=float)
        ok = np.isfinite(acc) & (acc > 0)
        slope = float(np.polyfit(ls[ok], np.log(acc[ok]), 1)[0]) if len(np.unique(ls[ok])) >= 2 else np.nan
        log_p = math.log(p_hat) if np.isfinite(p_hat) and p_hat > 0 else np.nan
        rows += [dict(r, log_accuracy_slope=slope, log_p_token_hat=log_p) for r in group_rows]
    out = pd.DataFrame(rows, columns=LENGTH_COLUMNS)
    return out if "shots" in samples.columns else out.drop(columns="shots")


def plot_length_analysis(ax, lengths_table: pd.DataFrame) -> None:
    """Observed exact match vs target length (log y, Wilson bars) with each model's ``p_hat ** L``."""
    for i, (model, g) in enumerate(lengths_table.groupby("model", sort=False)):
        g = g.sort_values("length")
        colour = f"C{i % 10}"
        pos = g[g["observed_exact_match"] > 0]
        if len(pos):
            yerr = np.vstack([pos["observed_exact_match"] - pos["exact_match_low"],
                              pos["exact_match_high"] - pos["observed_exact_match"]])
            ax.errorbar(pos["length"], pos["observed_exact_match"], yerr=np.clip(yerr, 0, None), fmt="o",
                        color=colour, ms=4, capsize=2, label=str(model))
        ax.plot(g["length"], g["predicted_exact_match"], "--", color=colour, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("target length (tokens)")
    ax.set_ylabel("exact match (dashed: p̂^L)")


# --------------------------------------------------------------------------- `mirage theory` output


@dataclass(frozen=True)
class TheoryResult:
    """Tables that ``mirage theory`` writes: the curves, their emergence scores, the 50 % crossings."""

    table: pd.DataFrame
    emergence: pd.DataFrame
    crossings: pd.DataFrame


def run_theory(law: PowerLaw, lengths: Sequence[int], n_min: float = DEFAULT_N_MIN, n_max: float = DEFAULT_N_MAX,
               points: int = 200, n_choices: int = 2, emergence_models: int = 8) -> TheoryResult:
    """Compute everything ``mirage theory`` shows (validated first, nothing written)."""
    n_min = float(_positive_array(n_min, "--n-min"))
    n_max = float(_positive_array(n_max, "--n-max"))
    if n_max <= n_min:
        raise MirageInputError(f"must be larger than --n-min ({n_min:g}), got {n_max:g}", "--n-max")
    if points < 2:
        raise MirageInputError(f"must be >= 2, got {points}", "--points")
    max_points = 100_000  # every point is a row per target length, in memory and in theory.csv
    if points > max_points:
        raise MirageInputError(f"must be <= {max_points:,} (one table row per point and length), got {points:,}",
                               "--points")
    L = np.unique(_lengths_array(lengths, "--lengths")).astype(int)
    _check_choices(n_choices)
    table = theory_table(law, L, np.geomspace(n_min, n_max, points), n_choices)
    emergence = theory_emergence(law, L, n_min, n_max, emergence_models, n_choices)
    crossings = pd.DataFrame({"length": L, "params_at_accuracy_0.5": law.scale_at_accuracy(0.5, L),
                              "params_at_accuracy_0.1": law.scale_at_accuracy(0.1, L)})
    return TheoryResult(table=table, emergence=emergence, crossings=crossings)


def theory_figure(result: TheoryResult, law: PowerLaw, n_choices: int = 2):
    """The paper's Figure 2: loss and p smooth; accuracy and the choice grade sharp; edit distance and Brier smooth."""
    from .report import pyplot

    plt = pyplot()
    t = result.table
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.2))
    first = t[t["length"] == t["length"].min()]
    lengths = sorted(t["length"].unique())
    panels = [
        ("cross_entropy", "A  per-token cross-entropy", False),
        ("p_token", "B  P(one token correct)", False),
        ("accuracy", "C  accuracy p^L (nonlinear)", True),
        ("token_edit_distance", "D  token edit distance L(1-p) (linear)", True),
        ("multiple_choice_grade", f"E  {n_choices}-option multiple-choice grade (discontinuous), L={lengths[0]}", True),
        ("brier_score", f"F  Brier score (continuous), L={lengths[0]}", True),
    ]
    cmap = plt.get_cmap("viridis")
    for ax, (col, title, per_length) in zip(axes.ravel(), panels):
        if per_length:
            # the option panels use one-token options, as in the paper; longer ones sharpen the softmax
            for i, L in enumerate(lengths if col in ("accuracy", "token_edit_distance") else lengths[:1]):
                g = t[t["length"] == L]
                ax.plot(g["params"], g[col], color=cmap(i / max(len(lengths) - 1, 1)), lw=1.6, label=f"L={L}")
        else:
            ax.plot(first["params"], first[col], color="black", lw=1.6)
        if col == "accuracy":
            for i, row in enumerate(result.crossings.itertuples(index=False)):
                ax.axvline(row[1], color=cmap(i / max(len(lengths) - 1, 1)), ls=":", lw=0.9)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("parameters N")
        ax.grid(alpha=0.25, which="both", lw=0.5)
    axes[0, 2].legend(fontsize=8, title="target length", title_fontsize=8)
    fig.suptitle(f"CE(N) = (N / {law.c:.3g}) ^ {law.alpha:g}: the metric, not the model, makes the jump", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def write_theory(out_dir: str | Path, result: TheoryResult, law: PowerLaw, n_choices: int = 2) -> Path:
    """Write theory.csv, emergence.csv, crossings.csv, figures/theory.png and report.html atomically."""
    import base64
    import html
    import io

    from .fsio import atomic_dir, write_csv, write_text
    from .report import close, html_document, table_html

    fig = theory_figure(result, law, n_choices)
    try:
        with atomic_dir(out_dir) as tmp:
            write_csv(tmp / "theory.csv", result.table)
            write_csv(tmp / "emergence.csv", result.emergence)
            write_csv(tmp / "crossings.csv", result.crossings)
            (tmp / "figures").mkdir()
            png = io.BytesIO()  # render once: the same PNG is the figure file and the report's image
            fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
            (tmp / "figures" / "theory.png").write_bytes(png.getvalue())
            uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
            em = result.emergence
            acc = em[em["metric"] == "accuracy"].set_index("task")
            ted = em[em["metric"] == "token_edit_distance"].set_index("task")
            body = [
                f"<div class=\"box\"><p>Per-token loss <code>CE(N) = (N / c)^alpha</code> with c = {law.c:.4g}, "
                f"alpha = {law.alpha:g}; {result.table['params'].nunique()} scales from "
                f"{result.table['params'].min():.3g} to {result.table['params'].max():.3g} parameters; "
                f"{n_choices}-option multiple choice. Defaults are Figure 2 of Schaeffer et al. (2023): "
                "alpha = -0.5, c = 2.0e9.</p></div>",
                f"<figure><img alt=\"theory\" src=\"{uri}\"></figure>",
                "<h2>Longer targets need larger models</h2><p>Parameters at which accuracy p<sup>L</sup> "
                "reaches 50 % and 10 %: <code>c (-log a / L)^(1/alpha)</code>.</p>",
                table_html(result.crossings),
                "<h2>Sharpness of each curve</h2><p class=\"muted\">Sampled at "
                f"{int(em['n_models'].iloc[0])} log-spaced models. <code>jump_share</code>: the largest step between "
                "neighbouring models as a share of the curve's range (1 = one step). Accuracy jump shares: "
                + html.escape(", ".join(f"{k} {v:.2f}" for k, v in acc["jump_share"].items()))
                + "; token edit distance: "
                + html.escape(", ".join(f"{k} {v:.2f}" for k, v in ted["jump_share"].items()))
                + ". The emergence score does not always rank them the same way: with few log-spaced models a "
                "smooth power law can score higher than p<sup>L</sup>.</p>",
                table_html(em, max_rows=200),
            ]
            write_text(tmp / "report.html", html_document("mirage theory", "\n".join(body)))
    finally:
        close(fig)
    return Path(out_dir)
