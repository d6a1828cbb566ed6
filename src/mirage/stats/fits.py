"""Fits: a power law by least squares in log space.

:func:`fit_power_law` fits the paper's per-token loss ``CE(N) = (N / c) ** alpha`` to a family
with a seeded bootstrap over models or over items; :func:`fit_loglog` is the plain fit;
:func:`ols_slope` a least-squares slope with its standard error from the points' variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..errors import MirageInputError
from ..schema.checks import positive_array
from .intervals import one_blas_thread, seeded_bootstrap_counts


@dataclass(frozen=True)
class LogLogFit:
    """Least-squares line ``log y = intercept + slope * log x`` (natural logs)."""

    slope: float
    intercept: float
    residual_sd: float
    n: int

    def predict(self, x: ArrayLike) -> np.ndarray:
        """``y`` of the fitted power law at ``x``."""
        return np.exp(self.intercept + self.slope * np.log(np.asarray(x, dtype=float)))


def fit_loglog(x: ArrayLike, y: ArrayLike) -> LogLogFit:
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

    def cross_entropy(self, N: ArrayLike) -> np.ndarray:
        """The fitted per-token cross-entropy at each scale."""
        return np.exp(self.intercept + self.alpha * np.log(positive_array(N, "scale")))

    def boot_cross_entropy(self, N: ArrayLike) -> np.ndarray:
        """CE at each scale for every bootstrap draw: shape (n_boot, len(N))."""
        log_n = np.log(positive_array(N, "scale").ravel())
        return np.exp(self.boot_intercept[:, None] + self.boot_alpha[:, None] * log_n[None, :])

    def as_row(self) -> dict:
        """The fit as one row of ``prediction_fits.csv``."""
        return dict(
            alpha=self.alpha,
            alpha_low=self.alpha_low,
            alpha_high=self.alpha_high,
            c=self.c,
            c_low=self.c_low,
            c_high=self.c_high,
            residual_sd=self.residual_sd,
            n_models=self.n_models,
            resampling=self.resampling,
            n_boot=self.n_boot,
            level=self.level,
        )


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
    scale: ArrayLike,
    per_token_ce: ArrayLike | None = None,
    *,
    per_token_error: ArrayLike | None = None,
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
    x = positive_array(scale, "scale").ravel()
    if (per_token_ce is None) == (per_token_error is None):
        raise MirageInputError("give exactly one of per_token_ce and per_token_error", "fit_power_law")
    kind = "ce" if per_token_ce is not None else "error"
    try:
        values = np.asarray(per_token_ce if kind == "ce" else per_token_error, dtype=float)
    except (TypeError, ValueError):
        raise MirageInputError("per-token values must be numbers", "fit_power_law") from None
    if values.ndim not in (1, 2) or values.shape[-1] != len(x):
        raise MirageInputError(
            f"per-token values must have one column per model ({len(x)}), got shape {values.shape}", "fit_power_law"
        )
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
        raise MirageInputError(
            "a power-law fit needs at least two models at different scales with 0 < loss < inf", "fit_power_law"
        )
    slope, intercept = (float(v[0]) for v in _weighted_lines(log_x, log_ce, np.ones((1, len(x)))))
    resid = log_ce[ok] - (intercept + slope * log_x[ok])
    resid_sd = float(np.sqrt(np.sum(resid**2) / max(int(ok.sum()) - 2, 1)))

    if values.ndim == 1:
        resampling = "models"
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x)), size=n_boot).astype(float)
        b_slope, b_int = _weighted_lines(log_x, log_ce, weights)
    else:
        resampling = "samples"
        filled = np.where(mask, matrix, 0.0)
        maskf = mask.astype(float)
        b_slope, b_int = np.empty(n_boot), np.empty(n_boot)
        row = 0
        complete = bool(mask.all())
        # the draws of default_rng(seed), remembered: every group of one size and seed has the same
        with one_blas_thread():
            for counts in seeded_bootstrap_counts(matrix.shape[0], n_boot, seed):
                counts = counts.astype(float)
                # with every item present, each resample's count is the number of items, exactly
                ns = float(matrix.shape[0]) if complete else counts @ maskf
                with np.errstate(invalid="ignore", divide="ignore"):
                    bmeans = (counts @ filled) / ns
                bce = np.log(_column_ce(bmeans, kind))
                s, i = _weighted_lines(log_x, bce, np.ones_like(bce))
                b_slope[row : row + len(s)], b_int[row : row + len(s)] = s, i
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
    return PowerLawFit(
        alpha=slope,
        intercept=intercept,
        alpha_low=float(a_lo),
        alpha_high=float(a_hi),
        c_low=float(c_lo),
        c_high=float(c_hi),
        residual_sd=resid_sd,
        n_models=int(ok.sum()),
        resampling=resampling,
        n_boot=int(len(b_slope)),
        level=level,
        boot_alpha=b_slope,
        boot_intercept=b_int,
    )


def ols_slope(x: np.ndarray, y: np.ndarray, var: np.ndarray | None = None) -> tuple[float, float]:
    """Least-squares slope of y on x and, given each point's variance, the slope's standard error.

    >>> ols_slope(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), np.array([1.0, 1.0, 1.0]))
    (2.0, 0.7071067811865476)
    """
    if len(np.unique(x)) < 2:
        return math.nan, math.nan
    dx = x - x.mean()
    w = dx / float(np.sum(dx**2))
    slope = float(np.sum(w * (y - y.mean())))
    se = float(np.sqrt(np.sum(w**2 * var))) if var is not None and np.isfinite(var).all() else math.nan
    return slope, se
