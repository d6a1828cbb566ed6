"""Pass rates from sampling each item until its first pass (at most ``K`` attempts).

Design. Each of ``n`` items is sampled until its first correct answer or ``K`` attempts, whichever
comes first. Under a common per-attempt pass rate ``p`` the attempts are independent Bernoulli
trials and the stopping rule is a stopping time, so the likelihood is ``p**S * (1 - p)**(N - S)``
with ``S`` the items that passed and ``N`` the attempts of all items: the maximum-likelihood
estimate is ``S / N``, each item weighted by its attempts.

Interval. The sampling distribution of ``(S, N)`` is not binomial, so the interval is built for
this design: the Clopper-Pearson construction (two one-sided tests at ``(1 - level) / 2`` each,
inverted, the observed outcome counted in both tails) with the outcomes ordered by their
maximum-likelihood estimate ``S / N`` (the *MLE ordering* of sequential designs, Jennison &
Turnbull 2000, ch. 8.4). A larger ``p`` makes every item pass sooner on every sample path, so
``S / N`` grows with ``p`` path by path, each tail probability is monotone in ``p`` and the
inverted tests form an interval. Its coverage is at least ``level`` for every ``p`` (the tests
check it by summing over every outcome of small designs, and ``benchmarks/until_pass_interval.py``
by simulation over a grid of rates, limits and item counts), it contains the estimate in every
design tried, with
``K = 1`` it is the Clopper-Pearson interval of a binomial proportion, and when every item passes
it is the exact interval of inverse (negative-binomial) sampling.

Computation. ``P(S / N >= c) = sum_s P(S = s) P(T_s <= t_s(c))``: ``S`` is
``Binomial(n, 1 - (1 - p)**K)``, and given ``S = s`` the failed attempts ``T_s`` of the items that
passed are a sum of ``s`` geometric counts truncated to ``0 .. K - 1``. The distribution of
``T_s`` is computed by FFT for the first ``s`` that needs it and by one pass of a linear recursion
per further ``s`` (each step convolves with a truncated geometric: ``scipy.signal.lfilter``), over
the values of ``T_s`` with any probability (below ``1e-14`` is dropped, as are the ``S`` whose
probability is below it: each tail is then within ``n 1e-14`` of its exact value). Designs whose work would
exceed :data:`MAX_WORK` values per evaluation order the outcomes by ``S`` alone (the
Clopper-Pearson interval of the passes, mapped to a per-sample rate: still exact, but wider and,
when the passes and the attempts disagree, not always around the estimate); ``method`` says which.

Prediction. With a per-item probability ``pi_s`` that one sample passes (from the teacher-forced
log-probability of the target followed by a stop), the same pooled estimator converges to
``E[passes] / E[attempts]`` with ``E[passes] = sum_s (1 - (1 - pi_s)**K)`` and ``E[attempts] =
sum_s (1 - (1 - pi_s)**K) / pi_s`` (:func:`predicted_pass_rate`). Items that differ make the common
rate a misspecification; the interval then describes the pooled rate, and is conservative for it
(``benchmarks/until_pass_interval.py`` measures how often it covers it).

>>> est = pass_rate_estimate(n_items=2000, passed=12, failures_of_passed=9000, limit=2000)
>>> round(est.rate, 6), est.attempts
(3e-06, 3985012)
>>> est.ci_low < est.rate < est.ci_high
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as _fft
from scipy import optimize as _opt
from scipy import signal as _signal
from scipy import stats as _sps

from ..errors import MirageInputError
from ..schema.vocab import PassRateMethod

# values of T's distributions computed per evaluation of a tail, beyond which S alone is used
MAX_WORK = 4e8
EXACT = PassRateMethod.EXACT.value  # the MLE ordering
PASSES_ONLY = PassRateMethod.PASSES_ONLY.value  # the fallback: ordered by S alone
_P_MIN, _P_MAX = 1e-300, 1.0 - 1e-15
_NEGLIGIBLE = 1e-14  # probability below which values of T, and of S where T is needed, are left out


@dataclass(frozen=True)
class PassRateEstimate:
    """The pooled pass rate of one model: ``rate = passed / attempts`` and its exact interval at
    ``level``; ``method`` is :data:`EXACT` or, for designs too large, :data:`PASSES_ONLY`."""

    n_items: int
    limit: int
    passed: int
    attempts: int
    rate: float
    ci_low: float
    ci_high: float
    level: float
    method: str


def pass_rate_estimate(
    n_items: int, passed: int, failures_of_passed: int, limit: int, level: float = 0.95
) -> PassRateEstimate:
    """The maximum-likelihood pass rate per attempt and its exact interval (module docstring).

    ``n_items`` items were each sampled until a pass or ``limit`` attempts; ``passed`` of them
    passed, after ``failures_of_passed`` failed attempts in all (the sum of the passing items'
    indices of their first pass, counted from 0). The others used ``limit`` attempts each.
    """
    n, s, t, k = int(n_items), int(passed), int(failures_of_passed), int(limit)
    if n < 1 or k < 1:
        raise MirageInputError(f"needs at least one item and one attempt, got {n} items, limit {k}", "until-pass")
    if not 0 <= s <= n or t < 0 or t > s * (k - 1):
        raise MirageInputError(
            f"inconsistent attempts: {s} of {n} items passed after {t} failed attempts with a limit of {k}",
            "until-pass",
        )
    if not 0.5 <= level < 1:
        raise MirageInputError(f"level must be in [0.5, 1), got {level}", "level")
    design = _Design(n, s, t, k, (1.0 - level) / 2.0)
    exact = design.work() <= MAX_WORK
    if s == 0:
        low = 0.0
    elif exact:
        low = design.lower_bound()
    else:
        low = _cp_low(s, n, k, design.alpha)
    if s == n and t == 0:
        high = 1.0
    elif s == 0:  # P(no item passes) = (1 - p)**(n K): the interval of zero passes, exactly
        high = _cp_high(0, n, k, design.alpha)
    elif exact:
        high = design.upper_bound()
    else:
        high = _cp_high(s, n, k, design.alpha)
    return PassRateEstimate(
        n, k, s, design.attempts, s / design.attempts, low, high, level, EXACT if exact else PASSES_ONLY
    )


def predicted_pass_rate(pass_probability: ArrayLike, limit: int) -> tuple[float, float, float]:
    """(E[passes], E[attempts], their ratio) of the until-pass design with per-item pass
    probabilities ``pass_probability`` (each item sampled until a pass or ``limit`` attempts).

    >>> passes, attempts, rate = predicted_pass_rate([0.5, 0.0], limit=4)
    >>> passes, attempts, round(rate, 4)
    (0.9375, 5.875, 0.1596)
    """
    pi = np.clip(np.asarray(pass_probability, dtype=float), 0.0, 1.0)
    k = float(limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1 - (1 - pi)**K without cancellation for tiny pi, and its ratio to pi (-> K as pi -> 0)
        q = -np.expm1(k * np.log1p(-pi))
        per_item = np.where(pi > 0, q / np.where(pi > 0, pi, 1.0), k)
    passes, attempts = float(q.sum()), float(per_item.sum())
    return passes, attempts, passes / attempts if attempts > 0 else math.nan


# ----------------------------------------------------------------------------- the MLE ordering


@dataclass(frozen=True)
class _Design:
    """One observed outcome: ``s`` of ``n`` items passed after ``t`` failed attempts, limit ``k``;
    ``alpha`` is each one-sided test's level."""

    n: int
    s: int
    t: int
    k: int
    alpha: float

    @property
    def attempts(self) -> int:
        return self.s + self.t + (self.n - self.s) * self.k

    def work(self) -> float:
        """About how many values of T's distributions one tail evaluation computes near the estimate."""
        if self.s == 0 or self.k == 1:
            return 0.0
        p = self.s / self.attempts
        q = _item_pass(p, self.k)
        spread_s = 14.0 * math.sqrt(self.n * q * (1 - q)) + 1
        spread_t = min(self.s * (self.k - 1) + 1, 40.0 * math.sqrt(self.s) * self.k / 3.4 + self.k)
        return min(spread_s, self.n + 1) * spread_t

    def thresholds(self, s: np.ndarray, upper: bool) -> np.ndarray:
        """For each number of passes s, the T at which the estimate s / N equals the observed one:
        the largest T with an estimate at least it (``upper``), else the smallest T with at most it."""
        num = s * self.attempts - self.s * (s + (self.n - s) * self.k)  # s_obs times that T, exactly
        return num // self.s if upper else -((-num) // self.s)

    def tail(self, p: float, upper: bool) -> float:
        """P_p(S / N >= observed) if ``upper``, else P_p(S / N <= observed) (both include it)."""
        n, k = self.n, self.k
        q = _item_pass(p, k)
        spread = 10.0 * math.sqrt(n * q * (1 - q)) + 10.0  # S beyond it has probability below 1e-20
        lo, hi = (0, n) if n <= 2000 else (max(0, int(n * q - spread)), min(n, int(n * q + spread) + 1))
        s = np.arange(lo, hi + 1, dtype=np.int64)
        weight = _sps.binom.pmf(s, n, q)
        tau = self.thresholds(s, upper)
        most = s * (k - 1)
        if upper:  # T <= tau: none if tau < 0, all if tau >= most
            total = float(weight[tau >= most].sum())
            need = (tau >= 0) & (tau < most)
        else:  # T >= tau: all if tau <= 0, none if tau > most
            total = float(weight[tau <= 0].sum())
            need = (tau > 0) & (tau <= most)
        need &= weight > _NEGLIGIBLE  # what S this unlikely adds cannot move a tail compared with alpha
        if need.any():
            total += _weighted_truncated_tails(p, k, s[need], weight[need], tau[need], upper)
        return min(1.0, total)

    def _brackets(self, upper: bool) -> list[tuple[float, float]]:
        """Where to look for a bound: first near the normal approximation's (its standard error of
        log p is about sqrt((1 - p) / S)), then within 10 / sqrt(S) of the estimate on the log scale."""
        rate = self.s / self.attempts
        se = math.sqrt(max(1.0 - rate, 1e-12) / self.s)
        z = float(_sps.norm.isf(self.alpha))
        near = (math.exp(-(1.5 * z + 1.0) * se), math.exp(-0.5 * z * se))
        wide = (math.exp(-10.0 / math.sqrt(self.s)), 1.0)
        if upper:  # the lower bound: below the estimate
            return [(rate * a, rate * b) for a, b in (near, wide)]
        return [(rate / b, min(_P_MAX, rate / a)) for a, b in (near, wide)]

    def lower_bound(self) -> float:
        """The smallest rate whose upper tail reaches alpha (the tail rises with p)."""
        return _root(lambda p: self.tail(p, True) - self.alpha, self._brackets(True), increasing=True)

    def upper_bound(self) -> float:
        """The largest rate whose lower tail reaches alpha (the tail falls with p)."""
        return _root(lambda p: self.tail(p, False) - self.alpha, self._brackets(False), increasing=False)


def _weighted_truncated_tails(
    p: float, k: int, s: np.ndarray, weight: np.ndarray, tau: np.ndarray, upper: bool
) -> float:
    """sum_j weight_j P(T_{s_j} <= tau_j) (``upper``) or P(T_{s_j} >= tau_j), for consecutive s_j."""
    one = _geometric_weights(p, k)
    one /= one.sum()
    r_k = math.exp(k * math.log1p(-p)) if p < 1 else 0.0
    c = float(one[0])  # p / (1 - (1 - p)**k): the first weight of the truncated geometric
    total = 0.0
    pmf, base, current = np.ones(1), 0, -1
    for step, (sj, wj, tj) in enumerate(zip(s.tolist(), weight.tolist(), tau.tolist())):
        if current < 0 or sj != current + 1:
            pmf, base = _trimmed(_convolution_power(one, sj), 0)
        else:  # one more item: convolve with the truncated geometric by its recursion, in one pass
            grown = _signal.lfilter([c], [1.0, -(1.0 - p)], np.concatenate([pmf, np.zeros(k - 1)]))
            grown[k:] -= r_k * grown[:-k]
            pmf = np.clip(grown, 0.0, None)
            if step % 8 == 0:  # the ends that hold (almost) nothing go, every few items
                pmf, base = _trimmed(pmf, base)
        current = sj
        cut = tj - base
        if upper:
            part = float(pmf[: max(0, min(len(pmf), cut + 1))].sum())
        else:
            part = float(pmf[max(0, min(len(pmf), cut)) :].sum())
        total += wj * min(1.0, part)
    return total


def _trimmed(pmf: np.ndarray, base: int) -> tuple[np.ndarray, int]:
    """``pmf`` (values from ``base``) without the ends that hold less than 1e-14 of probability."""
    cum = np.cumsum(pmf)
    if cum[-1] <= 0:
        return pmf, base
    start = int(np.searchsorted(cum, _NEGLIGIBLE))
    stop = int(np.searchsorted(cum, cum[-1] - _NEGLIGIBLE)) + 1
    return pmf[start:stop], base + start


def _root(excess: Callable[[float], float], brackets: list[tuple[float, float]], *, increasing: bool) -> float:
    """The rate where ``excess`` (increasing or decreasing in p) changes sign, searched in the first
    of ``brackets`` that holds it and else in (0, 1); found on the log scale of p, to a relative 1e-6."""
    for a, b in [*brackets, (_P_MIN, _P_MAX)]:
        lo, hi = math.log(max(a, _P_MIN)), math.log(min(max(b, a), _P_MAX))
        f_lo, f_hi = excess(math.exp(lo)), excess(math.exp(hi))
        if (f_lo < 0) != (f_hi < 0):
            return math.exp(_opt.brentq(lambda x: excess(math.exp(x)), lo, hi, xtol=1e-6, rtol=1e-9))
    # accepted everywhere or nowhere in (0, 1): the bound is an end of it
    return 0.0 if (f_lo >= 0) == increasing else 1.0


# ----------------------------------------------------------------------------- distributions


def _item_pass(p: float, k: int) -> float:
    """1 - (1 - p)**k, accurate for tiny p."""
    return float(-np.expm1(k * np.log1p(-p))) if p < 1 else 1.0


def _per_attempt(q: float, k: int) -> float:
    """The per-attempt rate p with 1 - (1 - p)**k = q."""
    return float(-np.expm1(np.log1p(-q) / k)) if q < 1 else 1.0


def _cp_low(s: int, n: int, k: int, alpha: float) -> float:
    """Clopper-Pearson lower bound of the per-sample rate from s of n items passing."""
    return _per_attempt(float(_sps.beta.ppf(alpha, s, n - s + 1)), k) if s > 0 else 0.0


def _cp_high(s: int, n: int, k: int, alpha: float) -> float:
    """Clopper-Pearson upper bound of the per-sample rate from s of n items passing."""
    return _per_attempt(float(_sps.beta.ppf(1.0 - alpha, s + 1, n - s)), k) if s < n else 1.0


def _geometric_weights(p: float, k: int) -> np.ndarray:
    """(1 - p)**j for j = 0 .. k - 1."""
    j = np.arange(k, dtype=float)
    with np.errstate(under="ignore"):
        return np.exp(j * math.log1p(-p)) if p < 1 else (j == 0).astype(float)


def _convolution_power(pmf: np.ndarray, times: int) -> np.ndarray:
    """The distribution of a sum of ``times`` independent copies of ``pmf`` (on 0, 1, ...)."""
    if times == 0:
        return np.ones(1)
    cells = times * (len(pmf) - 1) + 1
    size = _fft.next_fast_len(cells, real=True)
    out = _fft.irfft(_fft.rfft(pmf, n=size) ** times, n=size)[:cells]
    return np.clip(out, 0.0, None)
