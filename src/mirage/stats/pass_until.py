"""Pass rates from sampling each item until its first pass (at most ``K`` attempts).

Design. Each of ``n`` items is sampled until its first correct answer or ``K`` attempts, whichever
comes first. Under a common per-attempt pass rate ``p`` the attempts are independent Bernoulli
trials and the stopping rule is a stopping time, so the likelihood is ``p**S * (1 - p)**(N - S)``
with ``S`` the items that passed and ``N`` the attempts of all items: the maximum-likelihood
estimate is ``S / N``, each item weighted by its attempts.

Interval. The sampling distribution of ``(S, N)`` is not binomial, so the interval is built for
this design: the Clopper-Pearson construction (two one-sided tests at ``(1 - level) / 2`` each,
inverted, the observed outcome included in both tails), with outcomes ordered by evidence for a
larger ``p``. Two orderings are used, each where it keeps nearly all the information of the data:

* where ``p K < 1.5`` (few items pass), the **stage-wise ordering** (as for multi-stage designs,
  Jennison & Turnbull 2000, ch. 8): first by ``S``, which is ``Binomial(n, 1 - (1 - p)**K)``,
  then, among outcomes with equal ``S``, by ``T``, the failed attempts of the items that passed
  (given ``S = s``, a sum of ``s`` geometric counts truncated to ``0 .. K - 1``);
* where ``p K >= 1.5`` (most items pass, and ``S`` says little), by ``F = N - S``, the failed
  attempts of all items (a sum of ``n`` geometric counts truncated at ``K``).

Both statistics move monotonically with ``p`` on every sample path (a larger ``p`` passes sooner),
so each test's tail probability is monotone in ``p``; the accepted rates are found on each side of
``p K = 1.5`` and the interval is their hull, whose coverage is therefore at least ``level`` for
every ``p`` (checked by simulation in the tests). With ``K = 1`` it is the Clopper-Pearson interval
of a binomial proportion; when every item passes it is the exact negative-binomial interval. The
distributions of ``T`` and ``F`` are computed by FFT; where one would exceed :data:`MAX_CELLS`
values the next coarser ordering is used (``T`` for ``F``, then ``S`` alone: still exact, a little
wider) and the returned ``method`` says so.

Prediction. With a per-item probability ``pi_s`` that one sample passes (from the teacher-forced
log-probability of the target followed by a stop), the same pooled estimator converges to
``E[passes] / E[attempts]`` with ``E[passes] = sum_s (1 - (1 - pi_s)**K)`` and ``E[attempts] =
sum_s (1 - (1 - pi_s)**K) / pi_s`` (:func:`predicted_pass_rate`). Items that differ make the common
rate a misspecification; the interval then describes the pooled rate, and is conservative when the
items' own rates differ (the spread of a sum of differing truncated geometrics is smaller than that
of equal ones with the same mean, as for binomials), which the tests check by simulation.

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
from scipy import stats as _sps

from ..errors import MirageInputError
from ..schema.vocab import PassRateMethod

# the largest distribution (values) of T or F computed by FFT: about 100 MB of buffers
MAX_CELLS = 2**22
# rate x limit below which outcomes are ordered by passes first, at and above by failed attempts
SWITCH = 1.5
EXACT = PassRateMethod.EXACT.value  # both orderings as described
PASSES_ONLY = PassRateMethod.PASSES_ONLY.value  # a design too large for the attempts' distributions: S alone
_P_MIN, _P_MAX = 1e-300, 1.0 - 1e-15


@dataclass(frozen=True)
class PassRateEstimate:
    """The pooled pass rate of one model: ``rate = passed / attempts`` and its exact interval at
    ``level``; ``method`` is :data:`EXACT`, or :data:`PASSES_ONLY` where the design was too large
    to use the attempts' distributions."""

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
    low = 0.0 if s == 0 else design.lower_bound()
    high = 1.0 if (s == n and t == 0) else design.upper_bound()
    method = EXACT if design.stagewise_fits else PASSES_ONLY
    attempts = s + t + (n - s) * k
    return PassRateEstimate(n, k, s, attempts, s / attempts, low, high, level, method)


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


# ----------------------------------------------------------------------------- the two orderings


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
    def f(self) -> int:
        """Failed attempts of all items."""
        return self.t + (self.n - self.s) * self.k

    @property
    def stagewise_fits(self) -> bool:
        return self.s * (self.k - 1) + 1 <= MAX_CELLS

    @property
    def failures_fit(self) -> bool:
        return self.n * self.k + 1 <= MAX_CELLS

    @property
    def switch(self) -> float:
        """The rate at which the ordering changes (1 when the failures cannot be ordered)."""
        return min(_P_MAX, SWITCH / self.k) if self.failures_fit else _P_MAX

    def at_least(self, p: float, by_failures: bool) -> float:
        """P_p(an outcome at least as favourable to a large rate as the observed one), ordered by
        failures (else stage-wise)."""
        q = _item_pass(p, self.k)
        if by_failures:  # fewer failures: fewer failures favour a larger rate (ties included)
            return float(_failures_cdf(p, self.n, self.k)[self.f])
        above, at = float(_sps.binom.sf(self.s, self.n, q)), float(_sps.binom.pmf(self.s, self.n, q))
        if not self.stagewise_fits:
            return above + at
        return above + at * float(_truncated_cdf(p, self.s, self.k)[self.t])

    def at_most(self, p: float, by_failures: bool) -> float:
        """P_p(an outcome at most as favourable to a large rate as the observed one)."""
        q = _item_pass(p, self.k)
        if by_failures:
            cdf = _failures_cdf(p, self.n, self.k)
            return 1.0 - float(cdf[self.f - 1]) if self.f > 0 else 1.0
        below = float(_sps.binom.cdf(self.s - 1, self.n, q)) if self.s > 0 else 0.0
        at = float(_sps.binom.pmf(self.s, self.n, q))
        if not self.stagewise_fits or self.t == 0:
            return below + at
        return below + at * (1.0 - float(_truncated_cdf(p, self.s, self.k)[self.t - 1]))

    def lower_bound(self) -> float:
        """The smallest rate the upper-tail test accepts (``at_least`` rises with p on each side
        of the switch)."""
        split = self.switch
        below = _first_accepted(lambda p: self.at_least(p, False) - self.alpha, _P_MIN, _prev(split))
        if below < _prev(split) or split >= _P_MAX:
            return below
        return _first_accepted(lambda p: self.at_least(p, True) - self.alpha, split, _P_MAX)

    def upper_bound(self) -> float:
        """The largest rate the lower-tail test accepts (``at_most`` falls with p on each side)."""
        split = self.switch
        if split < _P_MAX:
            above = _last_accepted(lambda p: self.at_most(p, True) - self.alpha, split, _P_MAX)
            if above > split:
                return above
        return _last_accepted(lambda p: self.at_most(p, False) - self.alpha, _P_MIN, _prev(min(split, _P_MAX)))


def _prev(p: float) -> float:
    """The rate just below ``p``."""
    return p * (1.0 - 1e-12)


def _first_accepted(excess: Callable[[float], float], a: float, b: float) -> float:
    """The smallest p in [a, b] with excess(p) >= 0, excess increasing (b when none is)."""
    if excess(a) >= 0:
        return a if a > _P_MIN else 0.0
    if excess(b) < 0:
        return b
    x = _opt.brentq(lambda x: excess(min(b, max(a, math.exp(x)))), math.log(a), math.log(b), xtol=1e-10, rtol=1e-10)
    return min(b, max(a, math.exp(x)))


def _last_accepted(excess: Callable[[float], float], a: float, b: float) -> float:
    """The largest p in [a, b] with excess(p) >= 0, excess decreasing (a when none is)."""
    if excess(b) >= 0:
        return b if b < _P_MAX else 1.0
    if excess(a) < 0:
        return a
    x = _opt.brentq(lambda x: excess(min(b, max(a, math.exp(x)))), math.log(a), math.log(b), xtol=1e-10, rtol=1e-10)
    return min(b, max(a, math.exp(x)))


# ----------------------------------------------------------------------------- distributions


def _item_pass(p: float, k: int) -> float:
    """1 - (1 - p)**k, accurate for tiny p."""
    return float(-np.expm1(k * np.log1p(-p))) if p < 1 else 1.0


def _geometric_weights(p: float, k: int) -> np.ndarray:
    """(1 - p)**j for j = 0 .. k - 1."""
    j = np.arange(k, dtype=float)
    with np.errstate(under="ignore"):
        return np.exp(j * math.log1p(-p)) if p < 1 else (j == 0).astype(float)


def _convolution_power(pmf: np.ndarray, times: int) -> np.ndarray:
    """The distribution of a sum of ``times`` independent copies of ``pmf`` (on 0, 1, ...)."""
    cells = times * (len(pmf) - 1) + 1
    size = _fft.next_fast_len(cells, real=True)
    out = _fft.irfft(_fft.rfft(pmf, n=size) ** times, n=size)[:cells]
    return np.clip(out, 0.0, None)


def _truncated_cdf(p: float, s: int, k: int) -> np.ndarray:
    """P(T <= t) for t = 0 .. s (k - 1): T a sum of s geometric failure counts truncated to 0 .. k - 1."""
    if k == 1 or s == 0:
        return np.ones(1)
    one = _geometric_weights(p, k)
    return np.clip(np.cumsum(_convolution_power(one / one.sum(), s)), 0.0, 1.0)


def _failures_cdf(p: float, n: int, k: int) -> np.ndarray:
    """P(F <= f) for f = 0 .. n k: F a sum of n geometric failure counts capped at k."""
    one = np.append(p * _geometric_weights(p, k), math.exp(k * math.log1p(-p)) if p < 1 else 0.0)
    return np.clip(np.cumsum(_convolution_power(one, n)), 0.0, 1.0)
