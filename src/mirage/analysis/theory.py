"""``mirage theory`` as one pure function: the paper's model tabulated, its curves scored with the
emergence score of ``mirage analyze``, and the scales at which accuracy reaches 50 % and 10 %
(:func:`run_theory`; :func:`mirage.io.outputs.write_theory` writes them).

>>> result = run_theory(TheorySettings(lengths=(1, 5), points=20))
>>> result.crossings["params_at_accuracy_0.5"].map("{:.2g}".format).tolist()
['4.2e+09', '1e+11']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import MirageInputError
from ..metrics import facts
from ..metrics.names import THEORY_METRICS
from ..metrics.registry import Context
from ..model.power_law import PowerLaw, theory_table
from ..schema.results import TheoryResult
from ..schema.settings import TheorySettings
from ..schema.tables import CROSSINGS
from .emergence import emergence_table


def theory_curves(law: PowerLaw, lengths: ArrayLike, scales: np.ndarray, n_choices: int = 2) -> pd.DataFrame:
    """Every theory metric at ``scales`` as curves in the ``curves.csv`` format: family ``theory``,
    one task per target length (``L=5``), no intervals."""
    table = theory_table(law, lengths, scales, n_choices)
    parts = []
    for metric in THEORY_METRICS:
        entry = facts(metric, Context.THEORY.value)
        assert entry is not None  # every theory metric is registered (mirage.metrics.names)
        parts.append(
            pd.DataFrame(
                {
                    "family": "theory",
                    "model": table["params"].map("{:.6g}".format),
                    "scale": table["params"],
                    "task": "L=" + table["length"].astype(str),
                    "shots": pd.NA,
                    "metric": metric,
                    "metric_kind": entry.kind,
                    "higher_is_better": entry.higher_is_better,
                    "value": table[metric],
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "length": table["length"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def theory_emergence(
    law: PowerLaw, lengths: ArrayLike, n_min: float, n_max: float, n_models: int = 8, n_choices: int = 2
) -> pd.DataFrame:
    """Emergence score and jump share of every theory curve, sampled at ``n_models`` log-spaced scales
    (the table of :func:`mirage.analysis.emergence.emergence_table`, target lengths ascending, the
    metrics in ``theory.csv``'s order).

    Scores are taken at a family's worth of models (not at the dense plotting grid), because the
    emergence score of a curve depends on how many models sample it.
    """
    if n_models < 3:
        raise MirageInputError(f"needs at least 3 models, got {n_models}", "emergence models")
    curves = theory_curves(law, lengths, np.geomspace(n_min, n_max, n_models), n_choices)
    table, _ = emergence_table(curves)
    length = table["task"].str.removeprefix("L=").astype(int)
    order = table["metric"].map({m: i for i, m in enumerate(THEORY_METRICS)})
    return (
        table.assign(_l=length, _m=order)
        .sort_values(["_l", "_m"], kind="stable")
        .drop(columns=["_l", "_m"])
        .reset_index(drop=True)
    )


def run_theory(settings: TheorySettings = TheorySettings()) -> TheoryResult:
    """Compute everything ``mirage theory`` shows (the settings are validated when made; nothing
    is written)."""
    law = PowerLaw(settings.c, settings.alpha)
    lengths = np.array(settings.lengths)
    table = theory_table(
        law, lengths, np.geomspace(settings.n_min, settings.n_max, settings.points), settings.n_choices
    )
    emergence = theory_emergence(
        law, lengths, settings.n_min, settings.n_max, settings.emergence_models, settings.n_choices
    )
    crossings = pd.DataFrame(
        {
            "length": lengths,
            "params_at_accuracy_0.5": law.scale_at_accuracy(0.5, lengths),
            "params_at_accuracy_0.1": law.scale_at_accuracy(0.1, lengths),
        },
        columns=list(CROSSINGS.names),
    )
    return TheoryResult(table=table, emergence=emergence, crossings=crossings, settings=settings)
