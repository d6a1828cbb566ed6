"""The statistical tests behind a verdict, on arrays (many curves at once).

Each function takes one row per curve and one column per model (sorted by scale, NaN or a
``False`` mask where a model is missing) and returns arrays with one entry per curve, so the
same code decides one curve or a hundred thousand. Nothing here reads files or knows about
tables; :mod:`mirage.analysis.verdicts` turns curves and per-sample metrics into these arrays and the
results into verdict rows.

The tests, and why each one is shaped the way it is, are explained in ``docs/verdicts.md``:

- :func:`apparent_emergence`: does the discontinuous curve *look* emergent — flat at its floor
  over a stretch of the scale range, then a material rise resolved by the intervals? Measured on
  the log-scale axis by interpolation, so 4 or 16 models sampling one curve give one answer.
- :func:`power_law_break_test`: is a per-token loss a smooth power law in scale, against the
  alternative of a break between neighbouring models (a step down, or a kink where it starts to
  fall faster)? A weighted likelihood-ratio (score) test per break position, Bonferroni over the
  positions searched, one-sided in the direction that would make an ability appear.
- :func:`exact_match_transform_test`: does the smooth law, pushed through ``p ** L`` with the
  known target lengths, reproduce the observed exact match within its binomial uncertainty?
- :func:`output_lag_test`: are the outputs worse than the model's own probabilities of the
  target imply (outputs at chance while the loss improves: a loss threshold, not a metric)?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

# --------------------------------------------------------------------------- helpers


def _as2d(a: np.ndarray | list[Any] | float, dtype: type = float) -> np.ndarray:
    arr: np.ndarray = np.asarray(a, dtype=dtype)
    return arr[None, :] if arr.ndim == 1 else arr


def log_interp_position(x: np.ndarray, y: np.ndarray, mask: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row, the share of the log-scale range before ``y`` first exceeds ``level``.

    Linear interpolation between neighbouring models on ``log x``; 1.0 when the curve never
    exceeds the level, 0.0 when the first model already does. Rows need at least two models
    (NaN otherwise, and for rows whose models all sit at one scale). Only the models in ``mask``
    count; all rows at once, in the same arithmetic as one row at a time.
    """
    G, K = y.shape
    out = np.full(G, np.nan)
    if G == 0 or K == 0:
        return out
    mask = np.asarray(mask, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.log(np.where(mask, x, 1.0))
    rows = np.arange(G)
    cols = np.arange(K)
    n = mask.sum(axis=1)
    first = np.argmax(mask, axis=1)
    last = K - 1 - np.argmax(mask[:, ::-1], axis=1)
    span = lx[rows, last] - lx[rows, first]
    above = mask & (y > np.asarray(level, dtype=float)[:, None])
    has_above = above.any(axis=1)
    j = np.argmax(above, axis=1)
    # the valid model before each position: a running maximum of valid column indices
    valid_index = np.where(mask, cols[None, :], -1)
    before = np.concatenate([np.full((G, 1), -1), np.maximum.accumulate(valid_index, axis=1)[:, :-1]], axis=1)
    p = np.maximum(before[rows, j], 0)
    y0, y1 = y[rows, p], y[rows, j]
    x0, x1 = lx[rows, p], lx[rows, j]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(y1 != y0, (level - y0) / np.where(y1 != y0, y1 - y0, 1.0), 0.0)
        xc = x0 + np.clip(t, 0.0, 1.0) * (x1 - x0)
        share = (xc - lx[rows, first]) / span
    share = np.where(j == first, 0.0, share)
    share = np.where(has_above, share, 1.0)
    usable = (n >= 2) & ~(span <= 0)
    out[usable] = share[usable]
    return out


# --------------------------------------------------------------------------- apparent emergence


@dataclass(frozen=True)
class ApparentEmergence:
    """Step 1 of a verdict, per curve (arrays of length G).

    ``base``: the smallest model's value (oriented so higher is better); ``top``: the best
    model's; ``rise`` = top - base; ``rise_resolved``: the best model's interval lies above the
    smallest model's; ``flat_share``: the share of the log-scale range over which the curve stays
    within ``floor_band * rise`` of its base (interpolated); ``at_floor``: the smallest model's
    interval contains the stated floor (chance), NaN when no floor is known; ``has_intervals``:
    every model has a finite interval; ``apparent``: resolved, material (rise >= min_effect) and
    flat over at least ``min_flat_share`` of the range; ``reason`` codes say which part failed.
    """

    base: np.ndarray
    top: np.ndarray
    rise: np.ndarray
    rise_resolved: np.ndarray
    flat_share: np.ndarray
    at_floor: np.ndarray
    has_intervals: np.ndarray
    apparent: np.ndarray
    reason: np.ndarray  # "", "no_intervals", "too_few_models", "not_resolved", "small_effect", "no_flat_start"


def apparent_emergence(
    scale: np.ndarray,
    value: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    higher_is_better: np.ndarray | bool = True,
    floor: np.ndarray | float = np.nan,
    min_effect: np.ndarray | float = 0.1,
    floor_band: float = 0.1,
    min_flat_share: float = 0.25,
    min_models: int = 4,
) -> ApparentEmergence:
    """Does each discontinuous curve look emergent to a reader? (rows: curves; columns: models by scale)

    Oriented so that higher is better; ``min_effect`` is in the metric's own units (0.1 = ten
    points of accuracy). Intervals are required: a curve with any model lacking one gets
    ``reason = "no_intervals"`` and is never called apparent.
    """
    x = _as2d(scale)
    y = _as2d(value)
    lo = _as2d(ci_low)
    hi = _as2d(ci_high)
    G, K = y.shape
    m = np.isfinite(y) & np.isfinite(x) if mask is None else _as2d(mask, bool) & np.isfinite(y)
    sign = np.where(np.broadcast_to(np.asarray(higher_is_better, dtype=bool), (G,)), 1.0, -1.0)[:, None]
    y_o = sign * y
    lo_o = np.where(sign > 0, lo, -hi)
    hi_o = np.where(sign > 0, hi, -lo)
    floor = np.broadcast_to(np.asarray(floor, dtype=float), (G,)) * sign[:, 0]
    min_effect = np.broadcast_to(np.asarray(min_effect, dtype=float), (G,))
    n = m.sum(axis=1)
    first = np.argmax(m, axis=1)
    rows = np.arange(G)
    base = np.where(n > 0, y_o[rows, first], np.nan)
    y_masked = np.where(m, y_o, -np.inf)
    best = np.argmax(y_masked, axis=1)
    top = np.where(n > 0, y_o[rows, best], np.nan)
    rise = top - base
    has_int = np.all(~m | (np.isfinite(lo_o) & np.isfinite(hi_o)), axis=1) & (n > 0)
    resolved = lo_o[rows, best] > hi_o[rows, first]
    flat = log_interp_position(x, y_o, m, base + floor_band * np.maximum(rise, 0.0))
    at_floor = np.where(
        np.isfinite(floor), (lo_o[rows, first] <= floor + 1e-12) & (hi_o[rows, first] >= floor - 1e-12), np.nan
    )
    reason = np.full(G, "", dtype=object)
    reason[~(flat >= min_flat_share)] = "no_flat_start"
    reason[~(rise >= min_effect)] = "small_effect"
    reason[~resolved] = "not_resolved"
    reason[~has_int] = "no_intervals"
    reason[n < min_models] = "too_few_models"
    apparent = reason == ""
    return ApparentEmergence(
        base=sign[:, 0] * base,
        top=sign[:, 0] * top,
        rise=rise,
        rise_resolved=resolved & has_int,
        flat_share=flat,
        at_floor=at_floor,
        has_intervals=has_int,
        apparent=apparent,
        reason=reason,
    )


# --------------------------------------------------------------------------- smooth law and breaks


@dataclass(frozen=True)
class BreakTest:
    """A weighted power-law fit of log loss on log scale, and the best break against it.

    Per curve: ``alpha`` (fitted exponent, d log loss / d log scale) and its standard error;
    ``chi2``/``dof``: the null fit's weighted residual sum and degrees of freedom; ``break_z``:
    the most negative score statistic over the break positions searched (a step down, or a kink
    after which the loss falls faster); ``break_p``: its one-sided p-value times the number of
    positions searched (Bonferroni, capped at 1); ``break_kind`` ("step" / "kink") and
    ``break_index`` (the first model after the break); ``break_size``: the fitted step (log loss)
    or change of slope; ``n_models`` used. ``fitted`` and ``fitted_var`` (G x K): the null fit's
    log loss at every model and its variance, for pushing the law through a transform.
    """

    alpha: np.ndarray
    alpha_se: np.ndarray
    intercept: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    break_z: np.ndarray
    break_p: np.ndarray
    break_kind: np.ndarray
    break_index: np.ndarray
    break_size: np.ndarray
    n_models: np.ndarray
    fitted: np.ndarray
    fitted_var: np.ndarray
    irreducible: np.ndarray | None = None


# irreducible losses searched, as shares of the smallest loss of the curve (0: a pure power law)
IRREDUCIBLE_SHARES = np.concatenate([[0.0], 1.0 - np.geomspace(1.0, 0.02, 24)[1:]])


def power_law_break_test(
    scale: np.ndarray,
    loss: np.ndarray,
    loss_var: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    tolerance: float = 0.05,
    irreducible: bool = True,
    min_models: int = 3,
) -> BreakTest:
    """Test ``loss = E + exp(a + alpha log N)`` against a break between neighbouring models.

    ``loss`` is a per-token loss (> 0) per model; ``loss_var`` the variance of each model's
    loss estimate (sampling error; 0 or NaN when unknown). Each model's loss gets the variance
    ``loss_var + (tolerance * loss)**2``: ``tolerance`` is the relative scatter of a real family
    around its scaling law that is still called smooth (0.05 = 5 % of the loss), so a family
    measured on millions of tokens is not called broken for a wiggle of 1 %.

    ``irreducible``: the law may have an irreducible loss ``E >= 0`` (Hoffmann et al. 2022), which
    bends the log-log line upwards at large scale (the loss levels off); it is profiled over
    :data:`IRREDUCIBLE_SHARES` of the smallest loss (the line fitted on ``log(loss - E)``, each
    candidate scored by its weighted residual sum on the loss scale). An irreducible
    loss only ever flattens the curve, so it cannot absorb the breaks tested here, which make the
    loss *lower* than the trend: a step down, or a kink after which it falls faster (what would
    make an ability appear). See :func:`break_test`.
    """
    x = np.log(_as2d(scale))
    ell = _as2d(loss)
    G, K = ell.shape
    v_loss = np.zeros_like(ell) if loss_var is None else np.nan_to_num(_as2d(loss_var), nan=0.0)
    ok = np.isfinite(ell) & (ell > 0) & np.isfinite(x)
    if mask is not None:
        ok &= _as2d(mask, bool)
    safe = np.where(ok, ell, 1.0)
    sigma2 = v_loss + (tolerance * safe) ** 2
    shares = IRREDUCIBLE_SHARES if irreducible else np.array([0.0])
    low = np.min(np.where(ok, safe, np.inf), axis=1)
    low = np.where(np.isfinite(low), low, 0.0)
    E = low[:, None] * shares[None, :]  # G x S
    resid_loss = safe[:, None, :] - E[:, :, None]  # G x S x K
    ok3 = ok[:, None, :] & (resid_loss > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(ok3, np.log(np.where(ok3, resid_loss, 1.0)), np.nan)
        var = np.where(ok3, sigma2[:, None, :] / np.where(ok3, resid_loss, 1.0) ** 2, np.nan)
    S = len(shares)
    # the straight-line fit of every candidate E (the break search only matters for the chosen one)
    null = _null_fit(
        np.repeat(x, S, axis=0), y.reshape(G * S, K), var.reshape(G * S, K), ok3.reshape(G * S, K), 0.0, -1
    )
    # choose E by the weighted residual sum on the loss scale itself: on the log(loss - E) scale a
    # model whose loss is close to E gets a huge variance and would stop counting
    with np.errstate(over="ignore", invalid="ignore"):
        pred = E[:, :, None] + np.exp(-null.fitted.reshape(G, S, K))  # back from the oriented scale
        chi2 = np.sum(np.where(ok[:, None, :], (safe[:, None, :] - pred) ** 2 / sigma2[:, None, :], 0.0), axis=2)
    # models dropped because the loss is at or below E would lower chi2 for free: count them
    dropped = ok.sum(axis=1)[:, None] - ok3.sum(axis=2)
    chi2 = np.where(dropped > 0, np.inf, np.nan_to_num(chi2, nan=np.inf))
    best = np.argmin(chi2, axis=1)
    rows = np.arange(G)
    # the break test of the chosen E only: each row's arithmetic is its own, so this is the test
    # the whole grid would have given for those rows
    flat = break_test(
        x, y[rows, best], var[rows, best], ok3[rows, best], tolerance=0.0, direction=-1, min_models=min_models
    )

    e_best = E[rows, best]
    fy = flat.fitted
    with np.errstate(over="ignore"):
        fitted_loss = e_best[:, None] + np.exp(fy)
    frac = np.exp(fy) / fitted_loss
    return BreakTest(
        alpha=flat.alpha,
        alpha_se=flat.alpha_se,
        intercept=flat.intercept,
        chi2=flat.chi2,
        dof=np.where(flat.dof > 0, flat.dof - (e_best > 0), 0),
        break_z=flat.break_z,
        break_p=flat.break_p,
        break_kind=flat.break_kind,
        break_index=flat.break_index,
        break_size=flat.break_size,
        n_models=flat.n_models,
        fitted=np.log(fitted_loss),
        fitted_var=flat.fitted_var * frac**2,
        irreducible=e_best,
    )


@dataclass(frozen=True)
class _NullFit:
    """The weighted straight line of :func:`break_test`'s null hypothesis, row by row (oriented:
    ``yz = direction * y``), with the sums the break search reuses."""

    ok: np.ndarray
    w: np.ndarray
    xz: np.ndarray
    yz: np.ndarray
    n: np.ndarray
    sw: np.ndarray
    dx: np.ndarray
    sxx: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    resid: np.ndarray
    chi2: np.ndarray
    slope_se: np.ndarray
    fitted: np.ndarray
    fitted_var: np.ndarray


def _null_fit(
    x: np.ndarray, y: np.ndarray, var: np.ndarray | None, mask: np.ndarray | None, tolerance: float, direction: int
) -> _NullFit:
    """The null fit of :func:`break_test` (``fitted`` oriented; see there)."""
    ok = np.isfinite(y) & np.isfinite(x)
    if mask is not None:
        ok &= _as2d(mask, bool)
    v = np.zeros_like(y) if var is None else np.nan_to_num(_as2d(var), nan=0.0, posinf=np.inf)
    tot = np.where(ok, v, np.inf) + tolerance**2
    with np.errstate(divide="ignore"):
        w = np.where(ok & np.isfinite(tot) & (tot > 0), 1.0 / tot, 0.0)
    ok &= w > 0
    yz = np.where(ok, y, 0.0) * direction  # orient: a break in `direction` is a rise of yz
    xz = np.where(ok, x, 0.0)
    n = ok.sum(axis=1)
    sw = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xbar = (w * xz).sum(axis=1) / sw
        ybar = (w * yz).sum(axis=1) / sw
        dx = np.where(ok, xz - xbar[:, None], 0.0)
        sxx = (w * dx * dx).sum(axis=1)
        slope = (w * dx * (yz - ybar[:, None])).sum(axis=1) / sxx
        intercept = ybar - slope * xbar
        xall = np.where(np.isfinite(x), x, 0.0)
        fitted = intercept[:, None] + slope[:, None] * xall
        resid = np.where(ok, yz - fitted, 0.0)
        chi2 = (w * resid * resid).sum(axis=1)
        slope_se = np.sqrt(1.0 / sxx)
        fitted_var = 1.0 / sw[:, None] + (xall - xbar[:, None]) ** 2 / sxx[:, None]
    return _NullFit(ok, w, xz, yz, n, sw, dx, sxx, slope, intercept, resid, chi2, slope_se, fitted, fitted_var)


def break_test(
    x: np.ndarray,
    y: np.ndarray,
    var: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    tolerance: float = 0.05,
    direction: int = -1,
    min_models: int = 3,
) -> BreakTest:
    """Weighted straight line ``y = a + b x`` against a break between neighbouring points.

    Rows are curves; columns are points sorted by ``x``. Each point's variance is
    ``var + tolerance**2``. Alternatives, each one extra regressor ``z`` in the weighted
    regression: a step ``z = [point after position j]`` at every gap between neighbouring points,
    and a kink ``z = max(0, x - x_j)`` at every interior point. With known variances the
    likelihood-ratio test of one added regressor is the score statistic
    ``z_j = (r_z' W r_y) / sqrt(r_z' W r_z)`` (r: residuals after the null fit), standard normal
    under the null. Only breaks in ``direction`` count (-1: y drops below the trend; +1: y rises
    above it), and the smallest one-sided p-value is multiplied by the number of positions
    searched (Bonferroni), so the false-alarm rate stays at most the level whatever the number
    of points. Sums over "the points after j" are suffix sums, so all positions of all curves
    are tested in a few array operations.
    """
    fit = _null_fit(_as2d(x), _as2d(y), var, mask, tolerance, direction)
    G, K = fit.ok.shape
    ok, w, xz, n, sw, dx, sxx, slope, intercept = (
        fit.ok,
        fit.w,
        fit.xz,
        fit.n,
        fit.sw,
        fit.dx,
        fit.sxx,
        fit.slope,
        fit.intercept,
    )
    resid, chi2, slope_se, fitted, fitted_var = fit.resid, fit.chi2, fit.slope_se, fit.fitted, fit.fitted_var
    wr = w * resid

    def suffix(a: np.ndarray) -> np.ndarray:
        """Sum over the points after each position (exclusive)."""
        c = np.cumsum(a[:, ::-1], axis=1)[:, ::-1]
        return np.concatenate([c[:, 1:], np.zeros((G, 1))], axis=1)

    s_w, s_wdx, s_wr = suffix(w), suffix(w * dx), suffix(wr)
    s_wx, s_wrx, s_wxx, s_wdxx = suffix(w * xz), suffix(wr * xz), suffix(w * xz * xz), suffix(w * dx * xz)
    with np.errstate(divide="ignore", invalid="ignore"):
        # step at j, z = [k > j]: sum w z = s_w, sum w z^2 = s_w, sum w z dx = s_wdx
        den_step = (s_w - s_w**2 / sw[:, None]) - s_wdx**2 / sxx[:, None]
        z_step = s_wr / np.sqrt(den_step)
        # kink at j, z = (x_k - x_j)_+ for k > j
        sz = s_wx - xz * s_w
        sz2 = s_wxx - 2 * xz * s_wx + xz**2 * s_w
        szx = s_wdxx - xz * s_wdx
        num_kink = s_wrx - xz * s_wr
        den_kink = (sz2 - sz**2 / sw[:, None]) - szx**2 / sxx[:, None]
        z_kink = num_kink / np.sqrt(den_kink)
    # candidates: a step after every valid point but the last; a kink at every valid point with
    # valid points on both sides
    idx = np.arange(K)[None, :]
    first_valid = np.argmax(ok, axis=1)[:, None]
    last_valid = (K - 1 - np.argmax(ok[:, ::-1], axis=1))[:, None]
    eps = 1e-12
    cand_step = ok & (idx < last_valid) & np.isfinite(z_step) & (den_step > eps)
    cand_kink = ok & (idx > first_valid) & (idx < last_valid) & np.isfinite(z_kink) & (den_kink > eps)
    # a break in `direction` raises the oriented y above the line: large positive z
    zs = np.where(cand_step, z_step, -np.inf)
    zk = np.where(cand_kink, z_kink, -np.inf)
    m_search = cand_step.sum(axis=1) + cand_kink.sum(axis=1)
    js, jk = np.argmax(zs, axis=1), np.argmax(zk, axis=1)
    rows = np.arange(G)
    zs_max, zk_max = zs[rows, js], zk[rows, jk]
    use_kink = zk_max > zs_max
    best_z = np.where(use_kink, zk_max, zs_max)
    valid = (n >= min_models) & np.isfinite(best_z)
    p = np.minimum(1.0, _sps.norm.sf(best_z) * np.maximum(m_search, 1))
    pos = np.where(use_kink, jk, js)
    # the first valid point after the break position (the model the break is "before"), for all
    # rows at once: next_ok[g, k] is the first valid column >= k (K when there is none)
    next_ok = np.minimum.accumulate(np.where(ok, idx, K)[:, ::-1], axis=1)[:, ::-1]
    after = np.concatenate([next_ok, np.full((G, 1), K)], axis=1)[rows, pos + 1]
    nxt = np.where(valid & (after < K), after, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.where(use_kink, num_kink[rows, jk] / den_kink[rows, jk], s_wr[rows, js] / den_step[rows, js])
    nan = np.full(G, np.nan)
    kind = np.where(valid, np.where(use_kink, "kink", "step"), "").astype(object)
    return BreakTest(
        alpha=np.where(valid, direction * slope, nan),
        alpha_se=np.where(valid, slope_se, nan),
        intercept=np.where(valid, direction * intercept, nan),
        chi2=np.where(valid, chi2, nan),
        dof=np.where(valid, n - 2, 0),
        break_z=np.where(valid, direction * best_z, nan),
        break_p=np.where(valid, p, nan),
        break_kind=kind,
        break_index=np.where(valid, nxt, -1),
        break_size=np.where(valid, direction * size, nan),
        n_models=n,
        fitted=direction * fitted,
        fitted_var=fitted_var,
    )


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class TransformTest:
    """Does a smooth law, pushed through a transform, reproduce the observed curve?

    ``chi2`` over models of the standardized differences observed - predicted, ``dof``, its
    p-value ``p_value``; ``worst_z`` (the largest |z| and its sign: negative when the observation
    is below the prediction); ``factor``: the fitted decoding factor (exact match) or offset
    (margins); per model ``predicted`` and ``z``.
    """

    chi2: float
    dof: int
    p_value: float
    worst_z: float
    factor: float
    predicted: np.ndarray
    z: np.ndarray


# decoding factors searched for exact match: kappa scales each item's log-probability; greedy
# decoding and positively correlated token errors make exact match *more* likely than sampling
# tokens independently (kappa < 1); nothing in the metric can make it less likely (kappa > 1 is
# what a loss threshold looks like), so kappa is capped at 1
KAPPA_GRID = np.concatenate([np.geomspace(0.02, 1.0, 60)])


def exact_match_transform_test(
    correct: list[np.ndarray],
    target_logprob: list[np.ndarray],
    fitted_log_loss: np.ndarray,
    fitted_log_loss_var: np.ndarray,
    observed_loss: np.ndarray,
    *,
    tolerance: float = 0.0,
    kappa_grid: np.ndarray = KAPPA_GRID,
) -> TransformTest:
    """Exact match predicted from the smooth per-token-loss law vs observed, model by model.

    Per model i and item s: ``pi_s = exp(kappa * r_i * target_logprob_s)`` with
    ``r_i = fitted loss / observed loss`` (each item keeps its own difficulty and its own target
    length; the smooth law sets the model's level), so ``mean_s pi_s`` is the exact match the
    paper's model predicts under independent token errors. Observed and predicted are paired on
    the same items; the variance is the binomial one under the prediction,
    ``sum pi (1 - pi) / n^2``, plus the fit's uncertainty (delta method) and ``tolerance**2``.
    ``kappa`` in (0, 1] is fitted (see :data:`KAPPA_GRID`): every ``kappa`` of the grid at once
    (a kappa x items matrix per model, in blocks that bound memory), the first smallest
    chi-square chosen.
    """
    K = len(correct)
    kappas = np.asarray(kappa_grid, dtype=float)
    r = np.exp(fitted_log_loss) / observed_loss
    pred = np.empty((len(kappas), K))
    z = np.empty((len(kappas), K))
    for i in range(K):
        tl = np.asarray(target_logprob[i], dtype=float)
        n = len(tl)
        observed = float(correct[i].mean())
        block = max(1, _TRANSFORM_BLOCK // max(n, 1))
        # two block-sized buffers reused for every block and model (the same operations, in place)
        rows = min(block, len(kappas))
        lp_buf, pi_buf = np.empty((rows, n)), np.empty((rows, n))
        for a in range(0, len(kappas), block):
            scale = kappas[a : a + block] * r[i]
            lp = np.multiply(scale[:, None], tl[None, :], out=lp_buf[: len(scale)])
            pi = np.exp(lp, out=pi_buf[: len(scale)])
            mean = pi.mean(axis=1)
            dpred = np.mean(np.multiply(pi, lp, out=lp), axis=1)  # d pred / d log fitted loss
            spread = np.multiply(pi, np.subtract(1, pi, out=lp), out=lp)
            var = np.sum(spread, axis=1) / n**2 + dpred**2 * fitted_log_loss_var[i] + tolerance**2
            diff = observed - mean
            with np.errstate(divide="ignore", invalid="ignore"):
                zi = np.where(var > 0, diff / np.sqrt(np.where(var > 0, var, 1.0)), np.sign(diff) * np.inf)
            pred[a : a + block, i] = mean
            z[a : a + block, i] = np.where((var > 0) | (diff != 0), zi, 0.0)
    chi2 = np.sum(z**2, axis=1)
    best = _first_smallest(chi2)
    zb = z[best]
    worst = int(np.argmax(np.abs(zb)))
    factor = float(kappas[best])
    dof = K - 1 if factor < kappas[-1] else K
    return TransformTest(
        chi2=float(chi2[best]),
        dof=dof,
        p_value=float(_sps.chi2.sf(float(chi2[best]), max(dof, 1))),
        worst_z=float(zb[worst]),
        factor=factor,
        predicted=pred[best].copy(),
        z=zb.copy(),
    )


# entries of one kappa x items block of the exact-match transform (8M floats: 64 MB per array)
_TRANSFORM_BLOCK = 8_000_000


def _first_smallest(chi2: np.ndarray) -> int:
    """The grid point a running ``if chi2 < best`` keeps: the first smallest, and the first point when
    it is NaN (no comparison with NaN succeeds)."""
    if not len(chi2) or np.isnan(chi2[0]):
        return 0
    finite = np.where(np.isnan(chi2), np.inf, chi2)
    return int(np.argmin(finite))


@dataclass(frozen=True)
class LagTest:
    """Outputs against the model's own probabilities of the target, per model.

    ``observed`` and ``expected`` token accuracy, ``z`` of their paired difference (negative:
    the outputs are worse than the probabilities imply), ``p_value`` of the worst model
    (one-sided, Bonferroni over models), ``worst_index`` and ``worst_gap`` (expected - observed).
    """

    observed: np.ndarray
    expected: np.ndarray
    z: np.ndarray
    p_value: float
    worst_index: int
    worst_gap: float


def output_lag_test(observed: list[np.ndarray], expected: list[np.ndarray], *, tolerance: float = 0.02) -> LagTest:
    """Do the greedy outputs lag what the teacher-forced probabilities imply? (paired by item)

    ``observed[i]``: per item, the share of target tokens the output got right (1 - token edit
    distance / target length); ``expected[i]``: per item, the mean probability the model gives
    the target tokens (the token accuracy of sampling from it). Greedy decoding is usually
    *better* than sampling, so only a shortfall counts, and only beyond ``tolerance``: a model
    whose outputs stay at chance while its probabilities of the target rise (a loss threshold,
    Du et al. 2024) fails; a model whose outputs follow its probabilities passes.
    """
    K = len(observed)
    obs = np.array([float(np.mean(o)) for o in observed])
    exp_ = np.array([float(np.mean(e)) for e in expected])
    z = np.empty(K)
    for i in range(K):
        d = observed[i] - expected[i]
        n = len(d)
        se = float(np.std(d, ddof=1) / np.sqrt(n)) if n > 1 else np.inf
        se = max(se, 1e-12)
        z[i] = (float(np.mean(d)) + tolerance) / se
    worst = int(np.argmin(z))
    p = float(min(1.0, _sps.norm.cdf(z[worst]) * K))
    return LagTest(
        observed=obs, expected=exp_, z=z, p_value=p, worst_index=worst, worst_gap=float(exp_[worst] - obs[worst])
    )
