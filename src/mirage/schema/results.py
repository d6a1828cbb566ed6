"""What each command computes: the containers its ``run_*`` function returns and its
``write_*`` function writes. Each holds its tables (the specs of :mod:`mirage.schema.tables`) and
the settings it was computed with; none reads or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from .record_source import RecordSource
from .settings import AnalysisSettings, TheorySettings, VisionSettings


@dataclass(frozen=True)
class Inputs:
    """What the inputs hold: a long score table and/or sample records (either may be None), the
    files they came from, the x axis and what reading them decided (``notes``)."""

    scores: pd.DataFrame | None
    records: pa.Table | RecordSource | None  # a table in memory, or files read a unit at a time
    sources: tuple[str, ...] = ()
    scale_column: str = "params"
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class AnalysisResult:
    """Everything ``mirage analyze`` computes; the tables are what it writes as CSV
    (``curves``, ``emergence``, ``verdicts``, ``evidence``, ``predictions``, ``prediction_fits``,
    ``lengths``, ``resolution``, ``pass_rates``; ``samples`` as Parquet; ``insufficient`` and
    ``summary`` in summary.json)."""

    curves: pd.DataFrame
    emergence: pd.DataFrame
    verdicts: pd.DataFrame
    insufficient: pd.DataFrame
    samples: pd.DataFrame | None
    summary: dict[str, Any]
    predictions: pd.DataFrame | None = None
    prediction_fits: pd.DataFrame | None = None
    lengths: pd.DataFrame | None = None
    resolution: pd.DataFrame | None = None
    evidence: pd.DataFrame | None = None
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    pass_rates: pd.DataFrame | None = None  # from --until-pass records (pass_rates.csv)


@dataclass(frozen=True)
class MetaResult:
    """Everything ``mirage meta`` computes; the tables are what it writes as CSV."""

    curves: pd.DataFrame
    emergence: pd.DataFrame
    by_metric: pd.DataFrame
    pairs: pd.DataFrame
    rescore: pd.DataFrame
    summary: dict[str, Any]


@dataclass(frozen=True)
class TheoryResult:
    """Tables that ``mirage theory`` writes: the curves, their emergence scores, the 50 % and 10 %
    crossings, and the settings they were computed with."""

    table: pd.DataFrame
    emergence: pd.DataFrame
    crossings: pd.DataFrame
    settings: TheorySettings = field(default_factory=TheorySettings)


@dataclass(frozen=True)
class Predictions:
    """Exact match predicted from the smooth per-token loss: two tidy tables.

    ``predictions``: one row per (family, task[, shots], model) with ``row_kind="model"``; rows
    with ``row_kind="curve"`` (model empty, observed NaN) trace the predicted curve and band on a
    log-spaced grid for drawing, and ``row_kind="extrapolated"`` rows are the requested scales the
    family does not have. ``fits``: the fitted (c, alpha) with intervals per (family, task[, shots]).
    """

    predictions: pd.DataFrame
    fits: pd.DataFrame


@dataclass(frozen=True, eq=False)
class StoryTables:
    """Everything the demo's three-predictions page shows, as tables
    (:func:`mirage.analysis.story.story_tables` documents the columns)."""

    family: str | None
    main_task: str
    large_task: str
    length_task: str
    level: float
    curves: pd.DataFrame  # main task curves of the story metrics (the prediction 1 figure)
    prediction1: pd.DataFrame  # one row per story metric present
    verdict: pd.DataFrame  # the exact-match verdict row of the main task (0 or 1 row)
    prediction2: pd.DataFrame  # one row per model evaluated on the large task
    prediction3: pd.DataFrame  # one row per model x target length (main task)
    prediction3_models: pd.DataFrame  # per-model slopes: observed vs theory
    models: pd.DataFrame = field(default_factory=pd.DataFrame)  # the models: params, test problems
    prediction4: pd.DataFrame = field(default_factory=pd.DataFrame)  # back-test of the forecast, per held-out model
    prediction4_fit: pd.DataFrame = field(default_factory=pd.DataFrame)  # the forecast's law, status and crossing
    forecast: "ForecastResult | None" = None  # the forecast of the main task (its figure)


@dataclass(frozen=True)
class VisionComparison:
    """The headline discontinuous metric against one continuous metric, same predictions
    (oriented emergence scores)."""

    family: str
    task: str
    discontinuous_metric: str
    discontinuous_score: float
    continuous_metric: str
    continuous_score: float

    @property
    def discontinuous_exceeds(self) -> bool:
        """Whether the discontinuous metric's score is the larger."""
        return bool(self.discontinuous_score > self.continuous_score)


@dataclass(frozen=True)
class VisionExperimentResult:
    """One trained vision family: what it is, its long score table and per-image predictions."""

    name: str
    family: str
    task: str
    epochs: int
    n_models: int
    headline: str
    subset_k: tuple[int, ...]
    reconstruction_c: tuple[float, ...]
    scores: pd.DataFrame
    predictions: pd.DataFrame


@dataclass(frozen=True)
class VisionResult:
    """Everything ``mirage vision`` computes: each family's results, all scores and their
    emergence scores, the headline comparisons and the seconds each experiment took."""

    settings: VisionSettings
    experiments: tuple[VisionExperimentResult, ...]
    scores: pd.DataFrame
    emergence: pd.DataFrame
    comparisons: tuple[VisionComparison, ...]
    seconds: dict[str, float]


@dataclass(frozen=True)
class ForecastResult:
    """What ``mirage forecast`` computes (:func:`mirage.analysis.forecast.run_forecast`): the
    forecast per model, requested scale and curve point (``forecast.csv``), the crossings
    (``crossings.csv`` of the forecast), the law and transform of each group
    (``forecast_fits.csv``), the back-test per held-out model (``backtests.csv``) and a summary."""

    forecast: pd.DataFrame
    crossings: pd.DataFrame
    fits: pd.DataFrame
    backtests: pd.DataFrame
    summary: dict[str, Any]
