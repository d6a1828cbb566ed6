"""Power: how many test items would show a model above chance."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sps


def samples_needed(rate: ArrayLike, chance: ArrayLike = 0.0, level: float = 0.95, power: float = 0.8) -> np.ndarray:
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
