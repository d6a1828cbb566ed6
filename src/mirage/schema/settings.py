"""The settings of every command, validated when they are made.

Each is a frozen dataclass whose ``__post_init__`` checks every field and raises
:class:`~mirage.errors.MirageInputError` naming the one that is wrong, so a bad value fails where
it is given, not deep in numpy (scikit-learn's parameter constraints, in the shape of a dataclass):

>>> AnalysisSettings(level=1.5)
Traceback (most recent call last):
...
mirage.errors.MirageInputError: level: must be between 0.5 and 1, got 1.5
>>> MetaSettings().analysis_settings().bootstrap
200
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MirageInputError
from .checks import check_choices, check_law, check_seed, check_whole, positive_array, whole_lengths
from .vocab import KINDS, StrEnum


@dataclass(frozen=True)
class VerdictSettings:
    """The knobs of the verdict rule (defaults documented in docs/verdicts.md).

    ``level``: confidence level of the intervals; ``test_level``: significance level of each
    test of steps 2-3 (family-wise over break positions / models); ``min_models``,
    ``min_samples``: fewest models / samples per model for a verdict; ``min_effect``: the
    smallest rise of a discontinuous metric that counts (in its own units on a 0-1 scale; scaled
    by 100 for percentages); ``floor_band`` and ``min_flat_share``: a curve "stays at its start"
    while within ``floor_band`` x its rise of the smallest model, and must do so over at least
    ``min_flat_share`` of the log-scale range; ``loss_tolerance``: scatter of log loss around the
    power law still called smooth; ``lag_tolerance``: shortfall of output token accuracy against
    the model's probabilities still called consistent; ``margin_tolerance`` (nats per token) and
    ``transform_tolerance`` (exact match) likewise for the transform checks.
    """

    level: float = 0.95
    test_level: float = 0.01
    min_models: int = 4
    min_samples: int = 10
    min_effect: float = 0.1
    floor_band: float = 0.1
    min_flat_share: float = 0.25
    loss_tolerance: float = 0.05
    lag_tolerance: float = 0.02
    margin_tolerance: float = 0.1
    transform_tolerance: float = 0.0
    curve_by: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        checks = [
            ("level", 0.5 <= self.level < 1, "between 0.5 and 1"),
            ("test_level", 0 < self.test_level < 0.5, "between 0 and 0.5"),
            ("min_models", isinstance(self.min_models, int) and self.min_models >= 3, "a whole number >= 3"),
            ("min_samples", isinstance(self.min_samples, int) and self.min_samples >= 1, "a whole number >= 1"),
            ("min_effect", 0 < self.min_effect <= 1, "in (0, 1]"),
            ("floor_band", 0 < self.floor_band < 1, "in (0, 1)"),
            ("min_flat_share", 0 <= self.min_flat_share < 1, "in [0, 1)"),
            ("loss_tolerance", self.loss_tolerance >= 0 and math.isfinite(self.loss_tolerance), ">= 0"),
            ("lag_tolerance", 0 <= self.lag_tolerance < 1, "in [0, 1)"),
            ("margin_tolerance", self.margin_tolerance >= 0 and math.isfinite(self.margin_tolerance), ">= 0"),
            ("transform_tolerance", 0 <= self.transform_tolerance < 1, "in [0, 1)"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise MirageInputError(f"must be {what}, got {getattr(self, name)!r}", name)


@dataclass(frozen=True)
class AnalysisSettings:
    """Every knob of an analysis, recorded in summary.json; validated when made.

    ``bootstrap``: resamples for intervals of non-binary record metrics (0: none); ``seed``;
    ``level``: confidence level of intervals; ``curve_by``: extra score-table columns that are
    part of a curve's identity (e.g. ``first_operand``). The verdict knobs (``min_models`` ...
    ``transform_tolerance``) are those of :class:`VerdictSettings`, documented
    there and in docs/verdicts.md. ``metrics``: record metrics to compute (default: all the
    records support); ``kind_overrides``: metric name -> kind; ``answer_regex``: answer
    extraction before exact match.
    """

    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95
    min_models: int = 4
    min_samples: int = 10
    min_effect: float = 0.1
    floor_band: float = 0.1
    min_flat_share: float = 0.25
    test_level: float = 0.01
    loss_tolerance: float = 0.05
    lag_tolerance: float = 0.02
    transform_tolerance: float = 0.0
    curve_by: tuple[str, ...] = ()
    metrics: tuple[str, ...] | None = None
    kind_overrides: dict[str, str] = field(default_factory=dict)
    answer_regex: str | None = None

    def __post_init__(self) -> None:
        for name in ("bootstrap", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise MirageInputError(f"must be a whole number >= 0, got {value!r}", name)
        if not all(isinstance(c, str) and c for c in self.curve_by):
            raise MirageInputError(f"must be column names, got {self.curve_by!r}", "curve_by")
        if self.metrics is not None and not all(isinstance(m, str) and m for m in self.metrics):
            raise MirageInputError(f"must be metric names, got {self.metrics!r}", "metrics")
        bad = {k: v for k, v in dict(self.kind_overrides).items() if v not in KINDS}
        if bad:
            raise MirageInputError(f"kinds must be one of {', '.join(KINDS)}, got {bad!r}", "kind_overrides")
        if self.answer_regex is not None:
            try:
                re.compile(self.answer_regex)
            except (re.error, TypeError) as exc:
                raise MirageInputError(f"invalid regular expression: {exc}", "answer_regex") from None
        self.verdict_settings()  # validates the verdict knobs, naming the one that is wrong

    def verdict_settings(self) -> VerdictSettings:
        """The verdict rule's settings."""
        return VerdictSettings(
            level=self.level,
            test_level=self.test_level,
            min_models=self.min_models,
            min_samples=self.min_samples,
            min_effect=self.min_effect,
            floor_band=self.floor_band,
            min_flat_share=self.min_flat_share,
            loss_tolerance=self.loss_tolerance,
            lag_tolerance=self.lag_tolerance,
            transform_tolerance=self.transform_tolerance,
            curve_by=tuple(self.curve_by),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as recorded in summary.json."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics) if self.metrics else None
        out["curve_by"] = list(self.curve_by)
        out["kind_overrides"] = dict(self.kind_overrides)
        return out


DEFAULT_THRESHOLD = 2.0


@dataclass(frozen=True)
class MetaSettings:
    """The settings of ``mirage meta``.

    ``threshold``: the relative emergence score (1 = even steps) at which a curve counts as an
    apparent emergence; ``bootstrap``: resamples for the intervals of non-binary record metrics
    (fewer than ``analyze``'s 1000: meta ranks many curves and gates on the intervals only);
    ``seed``, ``level`` and ``kind_overrides`` as in :class:`AnalysisSettings`. The evidence gate
    uses the verdicts' defaults (:class:`VerdictSettings`).
    """

    threshold: float = DEFAULT_THRESHOLD
    bootstrap: int = 200
    seed: int = 0
    level: float = 0.95
    kind_overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float, np.number))
            or not math.isfinite(self.threshold)
        ):
            raise MirageInputError(f"must be a finite number, got {self.threshold}", "--threshold")
        self.analysis_settings()  # bootstrap, seed, level and kind_overrides, each named when wrong

    def analysis_settings(self) -> AnalysisSettings:
        """The settings the curves are computed with (the one code path of ``mirage analyze``)."""
        return AnalysisSettings(
            bootstrap=self.bootstrap, seed=self.seed, level=self.level, kind_overrides=dict(self.kind_overrides)
        )

    def verdict_settings(self) -> VerdictSettings:
        """The settings of the evidence gate (the verdicts' step 1)."""
        return VerdictSettings()


MAX_THEORY_POINTS = 100_000  # every point is a row per target length, in memory and in theory.csv


@dataclass(frozen=True)
class TheorySettings:
    """The settings of ``mirage theory``: the law ``CE(N) = (N / c) ** alpha`` (Figure 2 of the paper
    by default), the target ``lengths``, the scale range and grid (``n_min``, ``n_max``,
    ``points``), the options of the multiple-choice grade (``n_choices``) and the log-spaced models
    at which emergence scores are taken (``emergence_models``).

    >>> TheorySettings(lengths=(3, 1, 3)).lengths
    (1, 3)
    """

    c: float = 2.0e9
    alpha: float = -0.5
    lengths: tuple[int, ...] = (1, 2, 3, 4, 5)
    n_min: float = 1.0e7
    n_max: float = 1.0e12
    points: int = 200
    n_choices: int = 2
    emergence_models: int = 8

    def __post_init__(self) -> None:
        check_law(self.c, self.alpha)
        n_min = float(positive_array(self.n_min, "--n-min"))
        n_max = float(positive_array(self.n_max, "--n-max"))
        if n_max <= n_min:
            raise MirageInputError(f"must be larger than --n-min ({n_min:g}), got {n_max:g}", "--n-max")
        if self.points < 2:
            raise MirageInputError(f"must be >= 2, got {self.points}", "--points")
        if self.points > MAX_THEORY_POINTS:
            raise MirageInputError(
                f"must be <= {MAX_THEORY_POINTS:,} (one table row per point and length), got {self.points:,}",
                "--points",
            )
        lengths = tuple(int(v) for v in np.unique(whole_lengths(self.lengths, "--lengths")))
        check_choices(self.n_choices)
        if self.emergence_models < 3:
            raise MirageInputError(f"needs at least 3 models, got {self.emergence_models}", "emergence models")
        object.__setattr__(self, "n_min", n_min)
        object.__setattr__(self, "n_max", n_max)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "n_choices", int(self.n_choices))


class VisionExperiment(StrEnum):
    """The vision families of ``mirage vision`` (Section 5 of the paper)."""

    CNN = "cnn"
    AUTOENCODER = "autoencoder"
    TRANSFORMER = "transformer"


def parse_experiments(name: str) -> tuple[str, ...]:
    """``all`` or one experiment name, as ``--experiment`` takes it."""
    if name == "all":
        return VisionExperiment.values()
    if name not in VisionExperiment.values():
        raise MirageInputError(
            f"unknown experiment {name!r} (choose {', '.join(VisionExperiment.values())} or all)", "--experiment"
        )
    return (name,)


# Fewest images an on-disk dataset may have: 40 % are held out, and subset accuracy needs up to
# K = 30 test images (with fewer, a run would train on almost nothing and still write a report).
MIN_IMAGES = 100


@dataclass(frozen=True)
class VisionSettings:
    """The settings of ``mirage vision``: which ``experiments``, ``quick`` (every other model size),
    the ``seed`` of split, initialisation and batch order, and optional on-disk datasets replacing
    the built-in ones (``mnist`` for the CNN, ``cifar`` for the autoencoder, ``omniglot`` for the
    transformer), subsampled (seeded) to ``max_images``."""

    experiments: tuple[str, ...] = VisionExperiment.values()
    quick: bool = False
    seed: int = 0
    mnist: str | None = None
    cifar: str | None = None
    omniglot: str | None = None
    max_images: int = 5000

    def __post_init__(self) -> None:
        if not self.experiments:
            raise MirageInputError("no experiment chosen", "experiments")
        for name in self.experiments:
            parse_experiments(name)
        check_seed(self.seed, "seed")
        check_whole(self.max_images, "max_images", MIN_IMAGES)
        object.__setattr__(self, "experiments", tuple(self.experiments))

    def on_disk(self, experiment: str) -> str | None:
        """The user's dataset for ``experiment``, or None for the built-in one."""
        return {"cnn": self.mnist, "autoencoder": self.cifar, "transformer": self.omniglot}[experiment]


@dataclass(frozen=True)
class ForecastSettings:
    """The settings of ``mirage forecast`` (``docs/forecast.md``).

    ``to``: scales to forecast (the drawn grid reaches them); ``level``: the level of the
    discontinuous metric whose crossing scale is reported; ``band``: the band's coverage;
    ``bootstrap``: replicates over items and models; ``backtest``: hold out the K largest models,
    or ``backtest_above``: every model above this scale; ``test_level`` and ``loss_tolerance`` as
    in :class:`VerdictSettings`; ``confidence``: of the observed Wilson intervals; ``n_grid``: points
    of the drawn curve.

    >>> ForecastSettings(to=(1e10,)).to
    (10000000000.0,)
    >>> ForecastSettings(level=1.5)
    Traceback (most recent call last):
    ...
    mirage.errors.MirageInputError: --level: must be strictly between 0 and 1, got 1.5
    """

    to: tuple[float, ...] = ()
    level: float = 0.5
    band: float = 0.9
    bootstrap: int = 400
    seed: int = 0
    backtest: int = 0
    backtest_above: float | None = None
    test_level: float = 0.01
    loss_tolerance: float = 0.05
    confidence: float = 0.95
    n_grid: int = 60

    def __post_init__(self) -> None:
        try:
            to = tuple(float(v) for v in self.to)
        except (TypeError, ValueError):
            raise MirageInputError(f"must be numbers, got {self.to!r}", "--to") from None
        object.__setattr__(self, "to", to)
        checks: list[tuple[str, bool, str, Any]] = [
            ("--to", all(math.isfinite(v) and v > 0 for v in to), "positive scales", self.to),
            ("--level", 0 < self.level < 1, "strictly between 0 and 1", self.level),
            ("--band", 0.5 <= self.band < 1, "between 0.5 and 1", self.band),
            ("--bootstrap", _whole(self.bootstrap) and 20 <= self.bootstrap <= 100_000, "20 to 100000", self.bootstrap),
            ("--backtest", _whole(self.backtest) and self.backtest >= 0, "a whole number >= 0", self.backtest),
            (
                "--backtest-above",
                self.backtest_above is None or (math.isfinite(self.backtest_above) and self.backtest_above > 0),
                "a positive scale",
                self.backtest_above,
            ),
            ("test_level", 0 < self.test_level < 0.5, "between 0 and 0.5", self.test_level),
            (
                "loss_tolerance",
                self.loss_tolerance >= 0 and math.isfinite(self.loss_tolerance),
                ">= 0",
                self.loss_tolerance,
            ),
            ("confidence", 0.5 <= self.confidence < 1, "between 0.5 and 1", self.confidence),
            ("n_grid", _whole(self.n_grid) and 10 <= self.n_grid <= 10_000, "10 to 10000", self.n_grid),
        ]
        for name, ok, what, value in checks:
            if not ok:
                raise MirageInputError(f"must be {what}, got {value!r}", name)
        check_seed(self.seed, "--seed")
        if self.backtest and self.backtest_above is not None:
            raise MirageInputError("give --backtest or --backtest-above, not both", "--backtest")


def _whole(value: Any) -> bool:
    """A whole number that is not a bool."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))
