"""Checks of input values, apart from the computations that use them (SciPy's pattern): each
raises :class:`~mirage.errors.MirageInputError` naming the setting, option or argument.

>>> check_seed(-1)
Traceback (most recent call last):
...
mirage.errors.MirageInputError: --seed: must be a whole number from 0 to 4294967295, got -1
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import MirageInputError

MAX_SEED = 2**32 - 1  # seeds numpy and torch both accept


def check_seed(seed: int, source: str = "--seed") -> int:
    """A seed numpy and torch both accept: a whole number from 0 to 2**32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise MirageInputError(f"must be a whole number from 0 to {MAX_SEED}, got {seed}", source)
    return int(seed)


def check_whole(value: Any, name: str, minimum: int = 0) -> int:
    """A whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MirageInputError(f"must be a whole number >= {minimum}, got {value!r}", name)
    return int(value)


def positive_array(values: ArrayLike, source: str) -> np.ndarray:
    """``values`` as floats, all finite and > 0, and at least one."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise MirageInputError("must be numbers", source) from None
    if arr.size == 0:
        raise MirageInputError("is empty", source)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise MirageInputError("must be finite and > 0", source)
    return arr


def whole_lengths(values: ArrayLike, source: str = "length") -> np.ndarray:
    """Target lengths: whole numbers >= 1."""
    arr = positive_array(values, source)
    if np.any(arr < 1) or np.any(arr != np.round(arr)):
        raise MirageInputError("target lengths must be whole numbers >= 1", source)
    return arr


def check_law(c: float, alpha: float) -> None:
    """A power law ``(N / c) ** alpha`` whose loss falls with scale: c > 0, alpha < 0, both finite."""
    if not (isinstance(c, (int, float, np.floating, np.integer)) and math.isfinite(c) and c > 0):
        raise MirageInputError(f"must be finite and > 0, got {c!r}", "c")
    if not (isinstance(alpha, (int, float, np.floating, np.integer)) and math.isfinite(alpha) and alpha < 0):
        raise MirageInputError(f"must be finite and < 0 (loss falls with scale), got {alpha!r}", "alpha")


def check_choices(n_choices: int) -> int:
    """Options of a multiple-choice item: a whole number >= 2."""
    if int(n_choices) != n_choices or n_choices < 2:
        raise MirageInputError(f"must be a whole number >= 2, got {n_choices!r}", "n_choices")
    return int(n_choices)
