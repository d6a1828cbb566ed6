"""The vocabularies of mirage's tables: every value a categorical column may take.

Each is a :class:`StrEnum`: its members *are* the strings written to the CSV files (``str``,
``format``, JSON and equality all give the value), so a table holds them or the plain strings
alike, and a test can check a written column against the enum.

>>> Verdict.EXPLAINED == "explained by metric"
True
>>> [v.value for v in VERDICT_ORDER]
['not explained by metric choice', 'explained by metric', 'no apparent emergence', 'insufficient evidence']
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """An enum whose members are strings and print as their value (``enum.StrEnum`` of 3.11)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every member's value, in definition order."""
        return tuple(str(m.value) for m in cls)


class MetricKind(StrEnum):
    """How a metric responds to a smooth improvement of the per-token probability p.

    ``discontinuous``: a step per sample (exact match, multiple-choice grade); ``nonlinear``:
    continuous but compounding over tokens, like ``p ** L``; ``linear``: about linear in the
    per-token log-probability or error (the paper's *continuous* metrics). ``unknown`` is what a
    score-table name mirage does not know gets in ``curves.csv`` (never guessed).
    """

    DISCONTINUOUS = "discontinuous"
    NONLINEAR = "nonlinear"
    LINEAR = "linear"
    UNKNOWN = "unknown"


# the kinds a metric can be given (``--metric-kind``, a score table's ``metric_kind`` column)
KINDS: tuple[str, ...] = (MetricKind.DISCONTINUOUS.value, MetricKind.NONLINEAR.value, MetricKind.LINEAR.value)
# kinds that can look sudden; kinds of the paper's continuous metrics
SHARP_KINDS: tuple[str, ...] = (MetricKind.DISCONTINUOUS.value, MetricKind.NONLINEAR.value)
CONTINUOUS_KINDS: tuple[str, ...] = (MetricKind.LINEAR.value,)


class Verdict(StrEnum):
    """The verdict on one (family, task, discontinuous metric) (``docs/verdicts.md``)."""

    NOT_EXPLAINED = "not explained by metric choice"
    EXPLAINED = "explained by metric"
    NONE = "no apparent emergence"
    INSUFFICIENT = "insufficient evidence"


# the order verdicts are listed in: decided ones first
VERDICT_ORDER: tuple[Verdict, ...] = (Verdict.NOT_EXPLAINED, Verdict.EXPLAINED, Verdict.NONE, Verdict.INSUFFICIENT)


class CIMethod(StrEnum):
    """Where a curve point's interval comes from."""

    WILSON = "wilson"  # a binomial proportion with a known n
    BOOTSTRAP = "bootstrap"  # percentile bootstrap over items
    STDERR = "stderr"  # a score table's standard error, normal interval
    UNTIL_PASS = "until_pass_exact"  # exact interval of a pass rate from sampling until a pass
    NONE = "none"  # no interval can be given


class PassRateMethod(StrEnum):
    """``pass_rates.csv``: how a pass rate's exact interval was computed (:mod:`mirage.stats.pass_until`)."""

    EXACT = "exact"  # ordered by passes, then attempts (few pass) or by failed attempts (most pass)
    PASSES_ONLY = "exact, passes only"  # a design too large for the attempts' distributions


class TransformCheck(StrEnum):
    """Outcome of a verdict's third step (does the smooth law reproduce the curve?)."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not applicable"


class VerdictTest(StrEnum):
    """The tests behind a verdict, one row each in ``evidence.csv``."""

    APPARENT_EMERGENCE = "apparent_emergence"
    LOSS_BREAK = "loss_break"
    OUTPUT_LAG = "output_lag"
    TRANSFORM = "transform"


class NotApparent(StrEnum):
    """Why step 1 of a verdict did not find an apparent emergence (``apparent_emergence``)."""

    NO_INTERVALS = "no_intervals"
    TOO_FEW_MODELS = "too_few_models"
    NOT_RESOLVED = "not_resolved"
    SMALL_EFFECT = "small_effect"
    NO_FLAT_START = "no_flat_start"


class Outcome(StrEnum):
    """``evidence.csv`` outcomes other than the step-1 reasons (:class:`NotApparent`)."""

    APPARENT = "apparent"
    NOT_APPARENT = "not apparent"
    BREAK = "break"
    SMOOTH = "smooth"
    LAG = "lag"
    CONSISTENT = "consistent"
    PASSED = "passed"
    FAILED = "failed"


class BreakKind(StrEnum):
    """The strongest break a power-law test found (empty when the test could not run)."""

    STEP = "step"
    KINK = "kink"
    NONE = ""


class EvidenceLabel(StrEnum):
    """``mirage meta``: whether a curve's rise is resolved by its intervals."""

    RESOLVED = "resolved"
    NOT_RESOLVED = "not resolved"
    NO_INTERVALS = "no intervals"


class JudgedOn(StrEnum):
    """``mirage meta``: the scale a curve's relative emergence score is computed on."""

    PROBABILITY = "per-token probability"
    VALUE = "value"


class Origin(StrEnum):
    """``mirage meta``: whether a curve was computed from per-sample records or read from scores."""

    RECORDS = "records"
    SCORES = "scores"


class ByMetricLevel(StrEnum):
    """``meta_by_metric.csv``: a row per metric kind or per metric."""

    METRIC_KIND = "metric_kind"
    METRIC = "metric"


class RowKind(StrEnum):
    """``predictions.csv``: a model of the family, a point of the drawn curve, or an extrapolation."""

    MODEL = "model"
    CURVE = "curve"
    EXTRAPOLATED = "extrapolated"


class Resampling(StrEnum):
    """What a power-law fit's bootstrap resampled."""

    MODELS = "models"
    SAMPLES = "samples"


class RateSource(StrEnum):
    """``resolution.csv``: the success rate a sample size was computed for."""

    PREDICTED = "predicted"
    OBSERVED = "observed"


class PredictionSource(StrEnum):
    """The continuous per-sample metric a model's per-token loss is taken from."""

    TARGET_MEAN_LOGPROB = "target_mean_logprob"
    TOKEN_EDIT_DISTANCE = "token_edit_distance"


class ForecastStatus(StrEnum):
    """What became of a forecast (``docs/forecast.md``): made, made but flagged (the verdicts'
    tests find a breaking loss or lagging outputs among the models it rests on), or declined (the
    models carry no usable signal)."""

    FORECAST = "forecast"
    UNRELIABLE = "unreliable"
    DECLINED = "declined"


class ForecastRow(StrEnum):
    """A row of ``forecast.csv``: a model the law was fitted on, a held-out model (back-test), a
    requested scale, or a point of the drawn curve."""

    OBSERVED = "observed"
    HELD_OUT = "held_out"
    EXTRAPOLATED = "extrapolated"
    CURVE = "curve"


class CrossingKind(StrEnum):
    """A crossing of ``crossings.csv``: where the forecast reaches the level, or where this test
    set would first show the model above its floor."""

    LEVEL = "level"
    ABOVE_FLOOR = "above_floor"
