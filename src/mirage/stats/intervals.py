"""Confidence intervals: Wilson score intervals for proportions, normal intervals from a standard
error, and a paired, seeded percentile bootstrap of means (resample counts as matrix products).

>>> low, high = wilson_interval(0, 200)
>>> float(low), round(float(high), 4)
(0.0, 0.0188)
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse as _sparse
from scipy import stats as _sps
from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=64)
def z_value(level: float = 0.95) -> float:
    """The standard normal quantile of a two-sided ``level`` interval (1.96 for 0.95); cached,
    since every interval of every curve asks for it."""
    return float(_sps.norm.ppf(0.5 + level / 2.0))


def wilson_interval(successes: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
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


def stderr_interval(value: ArrayLike, stderr: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Normal interval ``value ± z * stderr`` (vectorised)."""
    value = np.asarray(value, dtype=float)
    half = z_value(level) * np.asarray(stderr, dtype=float)
    return value - half, value + half


@functools.lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """A context in which BLAS runs on one thread: the bootstrap's products of counts and values.

    OpenBLAS sums a long product differently with two threads than with one (float32 sums of
    50,000 items differ in the last bits), so intervals would depend on the machine's cores; on a
    busy machine its waiting threads also cost more than they save. One thread: the same bits
    wherever the same BLAS kernel runs, and no time lost to waiting.

    The limit is process-wide, so contexts entered on several threads share it: the first sets
    it and the last restores the original (a context left on one thread must not lift the limit
    while another thread is still inside its own). OpenBLAS does not take a larger thread count
    set from a thread other than the one that lowered it, so a caller that starts worker threads
    holds its own context around them (as the record analysis does): the last to leave is then
    the thread that entered first.
    """
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _blas().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


def bootstrap_counts(
    n_items: int, n_boot: int, rng: np.random.Generator, chunk: int | None = None
) -> Iterator[np.ndarray]:
    """Yield (rows, n_items) matrices of resample counts, ``n_boot`` rows in all.

    Counts (how often each item is drawn) turn every resampled mean into a matrix product, so
    one set of draws serves every metric and every model evaluated on the same items (a paired
    bootstrap over items).
    """
    if chunk is None:  # keep each block of draws around 16M entries
        chunk = max(1, min(n_boot, 16_000_000 // max(n_items, 1)))
    done = 0
    ones = np.ones(min(chunk, n_boot) * n_items, dtype=np.float32)
    while done < n_boot:
        rows = min(chunk, n_boot - done)
        idx = rng.integers(0, n_items, size=(rows, n_items), dtype=np.int32 if n_items < 2**31 else np.int64)
        yield _row_counts(idx, ones)
        done += rows


def _row_counts(idx: np.ndarray, ones: np.ndarray) -> np.ndarray:
    """How often each item is drawn, resample by resample: ``counts[r] = bincount(idx[r])`` as
    float32. The draws are read as a sparse matrix with one row per resample and its dense form
    made, which adds up repeated items in one pass in C (4x faster than a bincount per row, which
    also converts each row to int64 and scans it twice for its bounds); the same whole numbers."""
    rows, n_items = idx.shape
    if idx.size == 0:
        return np.zeros((rows, n_items), dtype=np.float32)
    index = np.int32 if idx.size < 2**31 else np.int64
    starts = np.arange(0, idx.size + 1, n_items, dtype=index)
    drawn = _sparse.csr_array((ones[: idx.size], idx.reshape(-1).astype(index, copy=False), starts), shape=idx.shape)
    return np.asarray(drawn.toarray(), dtype=np.float32)


# the most counts seeded_bootstrap_counts remembers per (seed, size): 64 MB as bytes
_REMEMBERED_COUNTS = 64_000_000


def seeded_bootstrap_counts(n_items: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The blocks of :func:`bootstrap_counts` from a generator seeded with ``seed``, remembered.

    The counts depend only on (seed, items, resamples), and callers with a fixed seed (the
    power-law fit of every (family, task) group) ask for the same ones again and again: the last
    few of at most ``_REMEMBERED_COUNTS`` entries are kept, as small integers (the values are the
    same whole numbers; the caller converts to the float type of its products).
    """
    if isinstance(seed, (int, np.integer)) and 0 < n_items * n_boot <= _REMEMBERED_COUNTS:
        yield from _remembered_counts(int(seed), n_items, n_boot)
    else:
        yield from bootstrap_counts(n_items, n_boot, np.random.default_rng(seed))


@functools.lru_cache(maxsize=2)
def _remembered_counts(seed: int, n_items: int, n_boot: int) -> tuple[np.ndarray, ...]:
    blocks = []
    for counts in bootstrap_counts(n_items, n_boot, np.random.default_rng(seed)):
        small = counts.astype(np.uint8) if counts.max() < 256 else counts
        small.flags.writeable = False
        blocks.append(small)
    return tuple(blocks)


class CountsAhead:
    """The blocks of :func:`bootstrap_counts` for ``n_items`` items, ``n_boot`` resamples and a
    generator seeded with ``seed``, drawn on ``pool`` (a worker thread: NumPy draws and counts
    without the interpreter lock) while the caller computes what the bootstrap needs.

    Drawing ahead is a guess at the next bootstrap's size: :func:`bootstrap_mean_ci` uses the
    blocks only when its items, resamples and seed are these, and draws its own otherwise, so the
    counts, and every interval, are those of drawing in place.
    """

    def __init__(self, n_items: int, n_boot: int, seed: int | np.random.SeedSequence, pool: Executor) -> None:
        self.n_items, self.n_boot, self.key = n_items, n_boot, _seed_key(seed)
        self._blocks: Future[list[np.ndarray]] = pool.submit(_all_counts, n_items, n_boot, seed)

    def blocks_for(self, n_items: int, n_boot: int, seed: int | np.random.SeedSequence) -> list[np.ndarray] | None:
        """The drawn blocks if they are those of (n_items, n_boot, seed), else None."""
        key = _seed_key(seed)
        if key is None or key != self.key or (n_items, n_boot) != (self.n_items, self.n_boot):
            return None
        return self._blocks.result()


def _all_counts(n_items: int, n_boot: int, seed: int | np.random.SeedSequence) -> list[np.ndarray]:
    return list(bootstrap_counts(n_items, n_boot, np.random.default_rng(seed)))


def _seed_key(seed: object) -> Hashable | None:
    """What makes two seeds give the same generator (None: not known)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return ("int", int(seed))
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy
        if entropy is None:
            return None
        entropy = int(entropy) if isinstance(entropy, (int, np.integer)) else tuple(int(e) for e in entropy)
        return ("seq", entropy, tuple(int(k) for k in seed.spawn_key), int(seed.pool_size))
    return None


def bootstrap_mean_ci(
    values: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    *,
    ahead: CountsAhead | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of column means of ``values`` (items × series).

    NaN marks an item a series lacks; each series' mean uses only the items it has. Returns
    (low, high) arrays with one entry per column. Seeded: the same input and seed give the same
    interval. ``ahead``: counts drawn beforehand, used if they are this call's (the same interval).
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
    drawn = ahead.blocks_for(n_items, n_boot, seed) if ahead is not None else None
    blocks = drawn if drawn is not None else bootstrap_counts(n_items, n_boot, np.random.default_rng(seed))
    means = np.empty((n_boot, n_series))
    # a series with every item: its resampled count is n_items exactly (a float32 sum of whole
    # counts below 2**24), so only the series with missing items need the second product
    gaps = np.flatnonzero(counts_per_series < n_items)
    maskf = mask.astype(np.float32) if len(gaps) or n_items >= 2**24 else np.empty((n_items, 0), np.float32)
    row = 0
    with one_blas_thread():
        for counts in blocks:
            sums = counts @ filled
            if n_items < 2**24:
                ns = np.full(sums.shape, float(n_items), dtype=np.float32)
                if len(gaps):
                    ns[:, gaps] = counts @ maskf[:, gaps]
            else:
                ns = counts @ maskf
            with np.errstate(invalid="ignore", divide="ignore"):
                means[row : row + len(counts)] = sums / ns
            row += len(counts)
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(means, [alpha, 1.0 - alpha], axis=0)
    return low + centre, high + centre
