# ruff: noqa: B023
"""Confidence intervals: Wilson score intervals for proportions, normal intervals from a standard
error, and a paired, seeded percentile bootstrap of means (resample counts as matrix products).

>>> low, high = wilson_interval(0, 200)
>>> float(low), round(float(high), 4)
(0.0, 0.0188)
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _sps
from threadpoolctl import threadpool_limits


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
    # BLAS on one thread (threadpoolctl), as mirage does since its results depend on the threads
    with threadpool_limits(limits=1, user_api="blas"):
        for counts in bootstrap_counts(n_items, n_boot, rng):
            sums = counts @ filled
            ns = counts @ maskf
            with np.errstate(invalid="ignore", divide="ignore"):
                means[row : row + len(counts)] = sums / ns
            row += len(counts)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(means, [alpha, 1.0 - alpha], axis=0)
    return low + centre, high + centre
