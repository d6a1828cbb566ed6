"""The emergence score of Srivastava et al. (2022), as used by Schaeffer et al., and the share of
a curve's change that happens in one step.

One implementation scores many curves at once (:func:`grouped_emergence_scores`, in numpy);
:func:`emergence_score` is its one-curve wrapper, so a curve scores the same bits whether it is
scored alone or among a hundred thousand.

>>> emergence_score([1, 2, 3, 4], [0.0, 0.0, 0.0, 1.0]).score
inf
>>> emergence_score([1, 2, 3, 4], [0.0, 1.0, 2.0, 3.0]).score
3.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class GroupScores:
    """Emergence scores of many curves at once, one entry per group id (0..n_groups-1)."""

    score: np.ndarray
    flat_then_jump: np.ndarray
    n_models: np.ndarray
    insufficient: np.ndarray


_HUGE = 1e150  # beyond this a squared step could overflow float64


def grouped_emergence_scores(group_ids: ArrayLike, scale: ArrayLike, values: ArrayLike) -> GroupScores:
    """The emergence score of every curve of a long table, in numpy.

    ``group_ids`` are 0..G-1 (every id present). Points are sorted by (group, scale) with a
    stable sort, so ties in scale keep their row order exactly as the per-curve function does;
    medians of squared steps come from one sort of all steps by (group, step), so the result is
    bit-for-bit the per-curve one.
    """
    g = np.asarray(group_ids, dtype=np.int64)
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    if not (len(g) == len(x) == len(y)):
        raise ValueError("group_ids, scale and values must have the same length")
    if len(g) == 0:
        empty = np.array([], dtype=float)
        return GroupScores(empty, empty.astype(bool), empty.astype(np.int64), empty.astype(bool))
    order = np.lexsort((x, g))
    g, y = g[order], y[order]
    n_groups = int(g.max()) + 1
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # the score is scale-free: a curve of huge finite values (1e308) is divided by its largest
    # magnitude first, so its steps squared cannot overflow; ordinary curves are left exactly as they are
    size = np.maximum.reduceat(np.abs(y), starts)
    huge = size > _HUGE
    if huge.any():
        y = np.where(huge[g], y / np.where(huge, size, 1.0)[g], y)
    ymax = np.maximum.reduceat(y, starts)
    ymin = np.minimum.reduceat(y, starts)
    pos = np.arange(len(y)) - starts[g]
    big = np.iinfo(np.int64).max
    # first occurrence, as np.argmax / np.argmin
    i_max = np.minimum.reduceat(np.where(y == ymax[g], pos, big), starts)
    i_min = np.minimum.reduceat(np.where(y == ymin[g], pos, big), starts)
    sign = np.sign(i_max - i_min).astype(float)
    spread = ymax - ymin
    same = g[1:] == g[:-1]
    d2 = np.diff(y)[same] ** 2
    dg = g[1:][same]
    d2 = d2[np.lexsort((d2, dg))]
    m = counts - 1
    dstart = np.concatenate([[0], np.cumsum(m)[:-1]])
    has = m > 0
    lo = np.where(has, dstart + (m - 1) // 2, 0)
    hi = np.where(has, dstart + m // 2, 0)
    med = np.full(n_groups, np.nan)
    if len(d2):
        med = np.where(has, (d2[np.minimum(lo, len(d2) - 1)] + d2[np.minimum(hi, len(d2) - 1)]) / 2, np.nan)
    insufficient = counts < 3
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(spread == 0, 0.0, np.where(med == 0, sign * np.inf, sign * spread / np.sqrt(med)))
    flat_then_jump = (~insufficient) & (spread != 0) & (med == 0)
    score = np.where(insufficient, np.nan, score)
    return GroupScores(score, flat_then_jump, counts, insufficient)


@dataclass(frozen=True)
class GroupSharpness:
    """The largest step of many curves at once (one entry per group id; see :class:`Sharpness`)."""

    jump_share: np.ndarray
    jump_index: np.ndarray
    resolved: np.ndarray
    n_models: np.ndarray


def grouped_jump_sharpness(
    group_ids: ArrayLike,
    scale: ArrayLike,
    values: ArrayLike,
    ci_low: ArrayLike | None = None,
    ci_high: ArrayLike | None = None,
) -> GroupSharpness:
    """:func:`jump_sharpness` of every curve of a long table, in numpy, bit for bit.

    ``group_ids`` are 0..G-1 (every id present); points are ordered by (group, scale) with a stable
    sort, as the per-curve function orders them. ``jump_index`` counts positions in that order.
    """
    g = np.asarray(group_ids, dtype=np.int64)
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(g) == 0:
        empty = np.array([], dtype=float)
        return GroupSharpness(empty, empty.astype(np.int64), empty.astype(bool), empty.astype(np.int64))
    order = np.lexsort((x, g))
    g, y = g[order], y[order]
    n_groups = int(g.max()) + 1
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    spread = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
    same = g[1:] == g[:-1]
    steps = np.abs(np.diff(y))
    step_group = g[1:][same]
    steps = steps[same]
    m = counts - 1
    has = m > 0
    step_start = np.concatenate([[0], np.cumsum(m)[:-1]])
    big = np.iinfo(np.int64).max
    i = np.zeros(n_groups, dtype=np.int64)
    if len(steps):
        top = np.full(n_groups, -np.inf)
        top[has] = np.maximum.reduceat(steps, step_start[has])
        pos = np.arange(len(steps)) - step_start[step_group]
        first = np.full(n_groups, big)
        first[has] = np.minimum.reduceat(np.where(steps == top[step_group], pos, big), step_start[has])
        i = np.where(has, first, 0)
    flat = spread == 0.0
    safe_spread = np.where(flat, 1.0, spread)
    with np.errstate(invalid="ignore", divide="ignore"):
        step_at = np.where(has, steps[np.minimum(step_start + i, max(len(steps) - 1, 0))] if len(steps) else 0.0, 0.0)
        share = np.where(has & ~flat, step_at / safe_spread, 0.0)
    ok = has & ~flat
    resolved = ok.copy()
    if ci_low is not None and ci_high is not None:
        lo = np.asarray(ci_low, dtype=float)[order]
        hi = np.asarray(ci_high, dtype=float)[order]
        a = np.minimum(starts + i, len(y) - 1)
        b = np.minimum(a + 1, len(y) - 1)
        known = np.isfinite(lo[a]) & np.isfinite(hi[a]) & np.isfinite(lo[b]) & np.isfinite(hi[b])
        disjoint = ~known | (hi[a] < lo[b]) | (hi[b] < lo[a])
        resolved = ok & disjoint
    return GroupSharpness(jump_share=share, jump_index=np.where(ok, i + 1, 0), resolved=resolved, n_models=counts)


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


def emergence_score(scale: ArrayLike, values: ArrayLike) -> EmergenceScore:
    """The emergence score of one curve: :func:`grouped_emergence_scores` of a single group.

    ``scale`` and ``values`` must be finite 1-d arrays of one length (``ValueError`` otherwise).
    """
    x = np.asarray(scale, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("scale and values must be 1-d arrays of the same length")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise ValueError("scale and values must be finite")
    n = len(y)
    if n == 0:
        return EmergenceScore(score=float("nan"), flat_then_jump=False, n_models=0, insufficient=True)
    g = grouped_emergence_scores(np.zeros(n, dtype=np.int64), x, y)
    return EmergenceScore(
        score=float(g.score[0]),
        flat_then_jump=bool(g.flat_then_jump[0]),
        n_models=n,
        insufficient=bool(g.insufficient[0]),
    )


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


def jump_sharpness(
    scale: ArrayLike, values: ArrayLike, ci_low: ArrayLike | None = None, ci_high: ArrayLike | None = None
) -> Sharpness:
    """The largest step of a curve between neighbouring models (sorted by scale) and whether the
    intervals resolve it (:class:`Sharpness`)."""
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
    return Sharpness(
        jump_share=share,
        jump_index=i + 1,
        resolved=resolved,
        n_models=n,
        with_trend=with_trend,
        change_resolved=change_resolved,
    )


def _disjoint(lo: np.ndarray, hi: np.ndarray, a: int, b: int) -> bool:
    """Intervals a and b do not overlap (True when either is unknown)."""
    if not (np.isfinite([lo[a], hi[a], lo[b], hi[b]]).all()):
        return True
    return bool(hi[a] < lo[b] or hi[b] < lo[a])
