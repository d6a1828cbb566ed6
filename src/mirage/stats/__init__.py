"""Statistics for scaling curves, pure numpy/scipy on arrays (nothing reads files):

- :mod:`~mirage.stats.intervals`: Wilson, normal and paired bootstrap intervals;
- :mod:`~mirage.stats.emergence`: the emergence score (one grouped implementation) and jump share;
- :mod:`~mirage.stats.evidence`: the tests behind a verdict (apparent emergence, power-law break,
  transform, output lag);
- :mod:`~mirage.stats.fits`: power-law fits;
- :mod:`~mirage.stats.power`: items needed to show a model above chance.
"""

from __future__ import annotations

from .emergence import (
    EmergenceScore,
    GroupScores,
    GroupSharpness,
    Sharpness,
    emergence_score,
    grouped_emergence_scores,
    grouped_jump_sharpness,
    jump_sharpness,
)
from .fits import LogLogFit, PowerLawFit, fit_loglog, fit_power_law, ols_slope
from .intervals import CountsAhead, bootstrap_counts, bootstrap_mean_ci, stderr_interval, wilson_interval, z_value
from .power import samples_needed

__all__ = [
    "CountsAhead",
    "EmergenceScore",
    "GroupScores",
    "GroupSharpness",
    "LogLogFit",
    "PowerLawFit",
    "Sharpness",
    "bootstrap_counts",
    "bootstrap_mean_ci",
    "emergence_score",
    "fit_loglog",
    "fit_power_law",
    "grouped_emergence_scores",
    "grouped_jump_sharpness",
    "jump_sharpness",
    "ols_slope",
    "samples_needed",
    "stderr_interval",
    "wilson_interval",
    "z_value",
]
