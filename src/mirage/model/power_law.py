"""The mathematical model of Schaeffer, Miranda & Koyejo (2023): pure functions of scale.

Per-token cross-entropy falls as a power law in parameters N, ``CE(N) = (N / c) ** alpha``
(alpha < 0), so one token is right with probability ``p(N) = exp(-CE(N))`` and, with independent
token errors (an approximation the paper states), a target of L tokens is fully right with
probability ``p ** L = exp(-L * CE)``. That nonlinear metric looks sudden on a log-N axis; the
expected token edit distance ``L * (1 - p)`` and the target log-probability ``-L * CE`` change
smoothly.

Multiple choice (K options) under a stated model of the option scores: the correct option's
summed log-probability is ``L log p``; the remaining per-token mass ``1 - p`` is shared evenly by
the K - 1 wrong options, so each scores ``L log((1 - p) / (K - 1))``. The grade (the correct
option strictly on top) is then a step at ``p = 1 / K`` (the paper's 2-option grade is 1 once
p > 0.5), and the multi-class Brier score of the softmax over option scores is
``K / (K - 1) * (1 - q) ** 2`` with q the correct option's softmax probability (for K = 2 and
L = 1, q = p and it is ``2 (1 - p) ** 2``: twice the paper's binary ``(1 - p) ** 2``; the same
multi-class definition as ``mirage.metrics``' ``brier_score``).

Fitting the model to a family (the inverse) is :func:`mirage.stats.fits.fit_power_law`; the
predictions it makes from records are in :mod:`mirage.analysis.predictions`. Everything is
computed in log space; bad input raises :class:`~mirage.errors.MirageInputError`.

>>> law = PowerLaw()  # Figure 2 of the paper: c = 2.0e9, alpha = -0.5
>>> [round(float(p), 4) for p in law.p_token([3.5e8, 1.3e9, 6.7e9, 2.0e11])]
[0.0916, 0.2893, 0.5791, 0.9048]
>>> round(float(law.accuracy(2.0e11, 5)), 4)
0.6065
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import MirageInputError
from ..schema.checks import check_choices, check_law, positive_array, whole_lengths
from ..schema.tables import THEORY

# Figure 2 of the paper: alpha = -0.5, c = 2.0e9 (README, "The mathematical model").
PAPER_C = 2.0e9
PAPER_ALPHA = -0.5
# With those constants p goes from ~1e-6 at 1e7 parameters to ~0.96 at 1e12: the paper's picture.
DEFAULT_N_MIN = 1.0e7
DEFAULT_N_MAX = 1.0e12


# --------------------------------------------------------------------------- forward model


def cross_entropy(N: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Per-token cross-entropy ``(N / c) ** alpha``, computed as ``exp(alpha (log N - log c))``."""
    check_law(c, alpha)
    n = positive_array(N, "N")
    return np.exp(alpha * (np.log(n) - math.log(c)))


def p_token(N: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Probability of one correct token, ``exp(-CE(N))``."""
    return np.exp(-cross_entropy(N, c, alpha))


def accuracy(N: ArrayLike, length: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Exact match of an L-token target, ``p ** L`` computed as ``exp(-L CE)`` (broadcasts N with L)."""
    return np.exp(target_logprob(N, length, c, alpha))


def token_edit_distance(N: ArrayLike, length: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Expected token edit distance ``L (1 - p)`` with independent token errors (``-expm1`` keeps 1 - p exact)."""
    L = whole_lengths(length)
    return L * -np.expm1(-cross_entropy(N, c, alpha))


def target_logprob(N: ArrayLike, length: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Log-probability of the whole target, ``-L CE``."""
    L = whole_lengths(length)
    return -L * cross_entropy(N, c, alpha)


def _choice_log_scores(ce: np.ndarray, L: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct option's summed log-prob, each wrong option's) under the module's stated model."""
    log_p = -ce
    log_1mp = np.log(-np.expm1(-ce))  # log(1 - p) without cancellation near p = 1
    return L * log_p, L * (log_1mp - math.log(K - 1))


def multiple_choice_grade(
    N: ArrayLike, length: ArrayLike = 1, c: float = PAPER_C, alpha: float = PAPER_ALPHA, n_choices: int = 2
) -> np.ndarray:
    """1 where the correct option strictly outscores each of the K - 1 others, i.e. where p > 1/K."""
    K = check_choices(n_choices)
    L = whole_lengths(length)
    right, wrong = _choice_log_scores(cross_entropy(N, c, alpha), L, K)
    return (right > wrong).astype(float)


def brier_score(
    N: ArrayLike, length: ArrayLike = 1, c: float = PAPER_C, alpha: float = PAPER_ALPHA, n_choices: int = 2
) -> np.ndarray:
    """Multi-class Brier score ``K/(K-1) (1 - q)**2`` of the softmax over option scores (q: correct option)."""
    K = check_choices(n_choices)
    L = whole_lengths(length)
    right, wrong = _choice_log_scores(cross_entropy(N, c, alpha), L, K)
    log_q = right - np.logaddexp(right, math.log(K - 1) + wrong)
    return K / (K - 1) * np.expm1(log_q) ** 2


def scale_at_accuracy(target: float, length: ArrayLike, c: float = PAPER_C, alpha: float = PAPER_ALPHA) -> np.ndarray:
    """Parameters N at which ``p(N) ** L`` equals ``target``: ``c (-log(target) / L) ** (1 / alpha)``.

    Longer targets need a larger model for the same accuracy: the curve moves right as L grows.
    """
    check_law(c, alpha)
    if not (0 < target < 1):
        raise MirageInputError(f"must be strictly between 0 and 1, got {target!r}", "target accuracy")
    L = whole_lengths(length)
    return np.exp(math.log(c) + (np.log(-math.log(target)) - np.log(L)) / alpha)


@dataclass(frozen=True)
class PowerLaw:
    """``CE(N) = (N / c) ** alpha``: a per-token loss that falls smoothly with scale (alpha < 0)."""

    c: float = PAPER_C
    alpha: float = PAPER_ALPHA

    def __post_init__(self) -> None:
        check_law(self.c, self.alpha)

    def cross_entropy(self, N: ArrayLike) -> np.ndarray:
        """Per-token cross-entropy at ``N`` (:func:`cross_entropy`)."""
        return cross_entropy(N, self.c, self.alpha)

    def p_token(self, N: ArrayLike) -> np.ndarray:
        """Probability of one correct token at ``N`` (:func:`p_token`)."""
        return p_token(N, self.c, self.alpha)

    def accuracy(self, N: ArrayLike, length: ArrayLike) -> np.ndarray:
        """Exact match of a ``length``-token target (:func:`accuracy`)."""
        return accuracy(N, length, self.c, self.alpha)

    def token_edit_distance(self, N: ArrayLike, length: ArrayLike) -> np.ndarray:
        """Expected token edit distance (:func:`token_edit_distance`)."""
        return token_edit_distance(N, length, self.c, self.alpha)

    def target_logprob(self, N: ArrayLike, length: ArrayLike) -> np.ndarray:
        """Log-probability of the whole target (:func:`target_logprob`)."""
        return target_logprob(N, length, self.c, self.alpha)

    def multiple_choice_grade(self, N: ArrayLike, length: ArrayLike = 1, n_choices: int = 2) -> np.ndarray:
        """The multiple-choice grade (:func:`multiple_choice_grade`)."""
        return multiple_choice_grade(N, length, self.c, self.alpha, n_choices)

    def brier_score(self, N: ArrayLike, length: ArrayLike = 1, n_choices: int = 2) -> np.ndarray:
        """The multi-class Brier score (:func:`brier_score`)."""
        return brier_score(N, length, self.c, self.alpha, n_choices)

    def scale_at_accuracy(self, target: float, length: ArrayLike) -> np.ndarray:
        """Parameters at which accuracy reaches ``target`` (:func:`scale_at_accuracy`)."""
        return scale_at_accuracy(target, length, self.c, self.alpha)


def theory_table(law: PowerLaw, lengths: ArrayLike, scales: ArrayLike, n_choices: int = 2) -> pd.DataFrame:
    """Every metric of the model at every (scale, length): the tidy table behind ``theory.csv``."""
    n = np.sort(positive_array(scales, "scales").ravel())
    L = whole_lengths(lengths, "lengths").ravel()
    NN, LL = np.meshgrid(n, L)  # one block of rows per length, scales ascending within it
    NN, LL = NN.ravel(), LL.ravel()
    return pd.DataFrame(
        {
            "params": NN,
            "length": LL.astype(int),
            "cross_entropy": law.cross_entropy(NN),
            "p_token": law.p_token(NN),
            "accuracy": law.accuracy(NN, LL),
            "token_edit_distance": law.token_edit_distance(NN, LL),
            "target_logprob": law.target_logprob(NN, LL),
            "multiple_choice_grade": law.multiple_choice_grade(NN, LL, n_choices),
            "brier_score": law.brier_score(NN, LL, n_choices),
        },
        columns=list(THEORY.names),
    )
