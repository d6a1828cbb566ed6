"""Statistics for scaling curves: intervals, emergence score, sharpness.

Everything here is pure numpy/scipy on arrays; nothing reads files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

# --------------------------------------------------------------------------- intervals


def z_value(level: float = 0.95) -> float:
    return float(_sps.norm.ppf(0.5 + level / 2.0))


def wilson_interval(successes, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (vectorised).

    Unlike the normal interval it is never degenerate at 0 or n successes, which is what lets a
    small model with 0 of n right be told apart from "exactly zero ability".
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_value(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 (or n) successes the bound is exactly 0 (or 1); rounding would leave 1e-19
    low = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def stderr_interval(value, stderr, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    value = np.asarray(value, dtype=float)
    half = z_value(level) * np.asarray(stderr, dtype=float)
    return value - half, value + half


def bootstrap_counts(n_items: int, n_boot: int, rng: np.random.Generator, chunk: int | None = None):
    """Yield (rows, n_items) matrices of resample counts, ``n_boot`` rows in all.

    Counts (how often each item is drawn) turn every resampled mean into a matrix product, so
    one set of draws serves every metric and every model evaluated on the same items (a paired
    bootstrap over items).
    """
    if chunk is None:  # keep each block of draws around 16M entries
        chunk = max(1, min(n_boot, 16_000_000 // max(n_items, 1)))
    done = 0
    while done < n_boot:
        rows = min(chunk, n_boot - done)
        idx = rng.integers(0, n_items, size=(rows, n_items), dtype=np.int32 if n_items < 2**31 else np.int64)
        idx += (np.arange(rows, dtype=idx.dtype) * n_items)[:, None]
        counts = np.bincount(idx.ravel(), minlength=rows * n_items).reshape(rows, n_items)
        yield counts.astype(np.float32)
        done += rows


def bootstrap_mean_ci(
    values: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of column means of ``values`` (items × series).

    NaN marks an item a series lacks; each series' mean uses only the items it has. Returns
    (low, high) arrays with one entry per column. Seeded: the same input and seed give the same
    interval.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n_items, n_series = values.shape
    if n_items == 0 or n_boot <= 0:
        nan = np.full(n_series, np.nan)
        return nan, nan.copy()
    mask = np.isfinite(values)
    counts_per_series = mask.sum(axis=0)
    # centring on each series' mean keeps the float32 products accurate for large offsets
    centre = np.where(mask, values, 0.0).sum(axis=0) / np.maximum(counts_per_series, 1)
    filled = np.where(mask, values - centre, 0.0).astype(np.float32)
    maskf = mask.astype(np.float32)
    rng = np.random.default_rng(seed)
    means = np.empty((n_boot, n_series))
    row = 0
    for counts in bootstrap_counts(n_items, n_boot, rng):
        sums = counts @ filled
        ns = counts @ maskf
        with np.errstate(invalid="ignore", divide="ignore"):
            means[row : row + len(counts)] = sums / ns
        row += len(counts)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(means, [alpha, 1.0 - alpha], axis=0)
    return low + centre, high + centre


# --------------------------------------------------------------------------- emergence score


@dataclass(frozen=True)
class EmergenceScore:
    """Emergence score of one curve (Srivastava et al. 2022, as used by Schaeffer et al.).

    ``score = sign(argmax y - argmin y) * (max y - min y) / sqrt(median (y_i - y_{i-1})^2)``
    with points sorted by scale. When the median squared step is zero (a curve flat at one
    value, then jumping) the score is ``±inf`` and ``flat_then_jump`` is set; a constant curve
    scores 0. Curves with fewer than 3 points are ``insufficient`` and have no score.
    """

    score: float
    flat_then_jump: bool
    n_models: int
    insufficient: bool = False


def emergence_score(scale, values) -> EmergenceScore:
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("scale and values must be 1-d arrays of the same length")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise ValueError("scale and values must be finite")
    n = len(y)
    if n < 3:
        return EmergenceScore(score=float("nan"), flat_then_jump=False, n_models=n, insufficient=True)
    order = np.argsort(x, kind="stable")
    y = y[order]
    spread = float(y.max() - y.min())
    if spread == 0.0:
        return EmergenceScore(score=0.0, flat_then_jump=False, n_models=n)
    sign = float(np.sign(int(np.argmax(y)) - int(np.argmin(y))))
    med = float(np.median(np.diff(y) ** 2))
    if med == 0.0:
        return EmergenceScore(score=sign * float("inf"), flat_then_jump=True, n_models=n)
    return EmergenceScore(score=sign * spread / float(np.sqrt(med)), flat_then_jump=False, n_models=n)


# --------------------------------------------------------------------------- sharpness


@dataclass(frozen=True)
class Sharpness:
    """How much of a curve's change happens in one step between adjacent models.

    ``jump_share`` is the largest absolute change between neighbouring models divided by the
    curve's range (max - min): 1/(n-1) for a straight line over evenly spaced models, 1 for a
    single step. ``jump_index`` is the index (in scale order) of the model after the jump.
    ``resolved`` says whether the two models either side of the jump have disjoint confidence
    intervals (True when no intervals are known), so noise is not called a jump.
    """

    jump_share: float
    jump_index: int
    resolved: bool
    n_models: int
    with_trend: bool = True
    change_resolved: bool = True

    def is_sharp(self, threshold: float = 0.5) -> bool:
        """A resolved jump, in the direction of the overall change, carrying >= threshold of it.

        ``change_resolved`` also asks that the smallest and largest models differ beyond their
        intervals: a curve that does not change beyond noise has no transition at all.
        """
        return self.jump_share >= threshold and self.resolved and self.with_trend and self.change_resolved


def jump_sharpness(scale, values, ci_low=None, ci_high=None) -> Sharpness:
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 2:
        return Sharpness(jump_share=0.0, jump_index=0, resolved=False, n_models=n)
    order = np.argsort(x, kind="stable")
    y = y[order]
    steps = np.abs(np.diff(y))
    spread = float(y.max() - y.min())
    if spread == 0.0:
        return Sharpness(jump_share=0.0, jump_index=0, resolved=False, n_models=n)
    i = int(np.argmax(steps))
    share = float(steps[i] / spread)
    with_trend = bool(np.sign(y[i + 1] - y[i]) == np.sign(y[-1] - y[0]))
    resolved = change_resolved = True
    if ci_low is not None and ci_high is not None:
        lo = np.asarray(ci_low, dtype=float)[order]
        hi = np.asarray(ci_high, dtype=float)[order]
        resolved = _disjoint(lo, hi, i, i + 1)
        change_resolved = _disjoint(lo, hi, 0, n - 1)
    return Sharpness(jump_share=share, jump_index=i + 1, resolved=resolved, n_models=n,
                     with_trend=with_trend, change_resolved=change_resolved)


def _disjoint(lo: np.ndarray, hi: np.ndarray, a: int, b: int) -> bool:
    """Intervals a and b do not overlap (True when either is unknown)."""
    if not (np.isfinite([lo[a], hi[a], lo[b], hi[b]]).all()):
        return True
    return bool(hi[a] < lo[b] or hi[b] < lo[a])


# --------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class LogLogFit:
    """Least-squares line ``log y = intercept + slope * log x`` (natural logs)."""

    slope: float
    intercept: float
    residual_sd: float
    n: int

    def predict(self, x) -> np.ndarray:
        return np.exp(self.intercept + self.slope * np.log(np.asarray(x, dtype=float)))


def fit_loglog(x, y) -> LogLogFit:
    """Fit a power law ``y = a x^b`` by least squares in log space (y > 0, x > 0)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        raise ValueError("a power-law fit needs at least two positive points")
    lx, ly = np.log(x[ok]), np.log(y[ok])
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    dof = max(int(ok.sum()) - 2, 1)
    return LogLogFit(float(slope), float(intercept), float(np.sqrt(np.sum(resid**2) / dof)), int(ok.sum()))


# --------------------------------------------------------------------------- resolution / power


def samples_needed(rate, chance=0.0, level: float = 0.95, power: float = 0.8) -> np.ndarray:
    """Test items needed to tell a true success rate ``rate`` from ``chance`` (one-sided).

    At ``chance = 0`` a single success proves the ability is above zero, so the answer is the
    n that gives at least one success with probability ``power``: ``log(1-power)/log(1-rate)``.
    Otherwise the normal-approximation sample size of a one-sided binomial test at level
    ``level``: ``((z_a sqrt(c(1-c)) + z_b sqrt(r(1-r))) / (r - c))**2``. Infinite when
    ``rate <= chance``. Vectorised.
    """
    r = np.asarray(rate, dtype=float)
    c = np.broadcast_to(np.asarray(chance, dtype=float), r.shape)
    z_a = float(_sps.norm.ppf(level))
    z_b = float(_sps.norm.ppf(power))
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = np.log1p(-power) / np.log1p(-np.clip(r, 0.0, 1.0 - 1e-16))
        normal = ((z_a * np.sqrt(c * (1 - c)) + z_b * np.sqrt(r * (1 - r))) / (r - c)) ** 2
        n = np.where(c <= 0, zero, normal)
    n = np.where(r > c, np.ceil(n), np.inf)
    return np.where(np.isfinite(n), np.maximum(n, 1.0), n)
