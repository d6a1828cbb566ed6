"""Scoring one model's held-out predictions under continuous and discontinuous metrics.

Every metric of a model is computed from the same per-image arrays (correctness and the log
probability of the true class for classifiers; squared reconstruction error for autoencoders),
so a difference between metrics is a difference of metric, never of predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln


@dataclass(frozen=True)
class MetricValue:
    """One metric of one model: its kind, direction, value, standard error and independent units."""

    metric: str
    metric_kind: str  # "discontinuous" | "linear" (the paper's continuous)
    higher_is_better: bool
    value: float
    stderr: float
    n_samples: int


def subset_accuracy(n_correct: int, n: int, k: int) -> float:
    """Probability that K test images drawn without replacement are all classified right.

    This is the exact expectation over all K-subsets of the n test images,
    ``C(n_correct, K) / C(n, K)`` (computed in log space), not one arbitrary partition into
    disjoint subsets, so it carries no partition noise. It is close to ``accuracy ** K``.
    """
    if k < 1 or k > n:
        raise ValueError(f"K must be in 1..{n}, got {k}")
    if n_correct < k:
        return 0.0
    log_ratio = (gammaln(n_correct + 1) - gammaln(n_correct - k + 1)) - (gammaln(n + 1) - gammaln(n - k + 1))
    return float(np.exp(log_ratio))


def _proportion_stderr(p: float, n_independent: int) -> float:
    return float(np.sqrt(p * (1.0 - p) / max(n_independent, 1)))


def classifier_metrics(correct: np.ndarray, true_logprob: np.ndarray, ks: tuple[int, ...]) -> list[MetricValue]:
    """Accuracy and cross-entropy (continuous) and subset accuracy for each K (discontinuous).

    The subset-accuracy standard error treats the ``n // K`` disjoint subsets as the independent
    units, since that is how many independent all-K-right trials the test set holds.
    """
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    acc = float(correct.mean())
    nll = -np.asarray(true_logprob, dtype=float)
    out = [
        MetricValue("accuracy", "linear", True, acc, _proportion_stderr(acc, n), n),
        MetricValue("cross_entropy", "linear", False, float(nll.mean()), float(nll.std(ddof=1) / np.sqrt(n)), n),
    ]
    n_correct = int(correct.sum())
    for k in ks:
        value = subset_accuracy(n_correct, n, k)
        out.append(
            MetricValue(
                f"subset_accuracy_k{k}", "discontinuous", True, value, _proportion_stderr(value, n // k), n // k
            )
        )
    return out


def threshold_name(c: float) -> str:
    """The metric name of the reconstruction threshold ``c`` (``reconstruction_c0.003``)."""
    return f"reconstruction_c{c:g}"


def reconstruction_metrics(squared_error: np.ndarray, cs: tuple[float, ...]) -> list[MetricValue]:
    """Mean squared error (continuous) and, for each c, the fraction of images whose mean
    squared pixel error is below c (the paper's Reconstruction_c, discontinuous)."""
    err = np.asarray(squared_error, dtype=float)
    n = len(err)
    out = [MetricValue("mse", "linear", False, float(err.mean()), float(err.std(ddof=1) / np.sqrt(n)), n)]
    for c in cs:
        frac = float((err < c).mean())
        out.append(MetricValue(threshold_name(c), "discontinuous", True, frac, _proportion_stderr(frac, n), n))
    return out
