"""One spec per output table: every file a mirage command writes, column by column.

A :class:`TableSpec` names the file, and for each column its dtype and a one-line meaning
(:class:`ColumnSpec`); categorical columns name their vocabulary (:mod:`mirage.schema.vocab`).
The producers build their tables from these specs (column order included), the contract tests
check every written table against them (:func:`check_table`), and the README's column tables
are generated from them (:func:`markdown_columns`).

>>> [c.name for c in CROSSINGS.columns]
['length', 'params_at_accuracy_0.5', 'params_at_accuracy_0.1']
>>> CURVES.file
'curves.csv'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .vocab import (
    KINDS,
    BreakKind,
    ByMetricLevel,
    CIMethod,
    CrossingKind,
    EvidenceLabel,
    ForecastRow,
    ForecastStatus,
    JudgedOn,
    MetricKind,
    NotApparent,
    Origin,
    Outcome,
    PassRateMethod,
    PredictionSource,
    RateSource,
    Resampling,
    RowKind,
    TransformCheck,
    Verdict,
    VerdictTest,
)

# dtypes a column may have (what its values must read back as from the CSV or Parquet file)
STRING, FLOAT, INTEGER, BOOLEAN = "string", "float", "integer", "boolean"
DTYPES = (STRING, FLOAT, INTEGER, BOOLEAN)


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its name, dtype, one-line meaning and, where categorical, its values.

    ``nullable``: the column may be empty in some rows (NaN for floats); ``optional``: a table may
    leave the column out entirely (e.g. ``shots`` when no input has one).
    """

    name: str
    dtype: str
    meaning: str
    values: tuple[str, ...] | None = None
    nullable: bool = False
    optional: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}")


@dataclass(frozen=True)
class TableSpec:
    """A table mirage writes: its ``file`` name (inside the command's ``--out``), its columns in
    order, and what may come with them.

    ``curve_by_after``: the column after which ``--curve-by`` columns are inserted (None: the
    table has none); ``extra``: whether further columns may follow the declared ones (a score
    table's own columns in ``curves.csv``, the per-sample metric columns of ``samples.parquet``);
    ``trailing``: columns that come last, after any extra ones; ``ordered``: whether the declared
    columns must come in their order (else only their presence and values are checked).
    """

    name: str
    file: str
    meaning: str
    columns: tuple[ColumnSpec, ...]
    curve_by_after: str | None = None
    extra: bool = False
    trailing: tuple[ColumnSpec, ...] = ()
    ordered: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        """The declared column names, in order (trailing ones not included)."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``."""
        for c in self.columns + self.trailing:
            if c.name == name:
                return c
        raise KeyError(name)

    def columns_for(self, curve_by: Sequence[str] = (), present: Iterable[str] | None = None) -> list[str]:
        """The column names in order, with ``curve_by`` columns in their place and optional
        columns kept only if they are in ``present`` (all of them when ``present`` is None)."""
        keep = None if present is None else set(present)
        out: list[str] = []
        for c in self.columns:
            if not (c.optional and keep is not None and c.name not in keep):
                out.append(c.name)
            if c.name == self.curve_by_after:
                out.extend(curve_by)
        return out


def _c(
    name: str,
    dtype: str,
    meaning: str,
    values: Iterable[str] | None = None,
    *,
    nullable: bool = False,
    optional: bool = False,
) -> ColumnSpec:
    return ColumnSpec(name, dtype, meaning, None if values is None else tuple(values), nullable, optional)


_SHOTS = _c("shots", INTEGER, "few-shot examples in the prompt; empty where it does not apply", nullable=True)
_KIND_VALUES = MetricKind.values()  # includes "unknown": a name mirage does not know
# columns many tables share, declared once
_FAMILY = _c("family", STRING, "model family")
_TASK = _c("task", STRING, "task name")
_MODEL = _c("model", STRING, "model")
_SCALE = _c("scale", FLOAT, "scale")
_METRIC = _c("metric", STRING, "metric name")
_METRIC_KIND = _c("metric_kind", STRING, "kind of the metric", _KIND_VALUES)
_HIGHER = _c("higher_is_better", BOOLEAN, "whether larger values are better")
_N_MODELS = _c("n_models", INTEGER, "models on the curve")
_SCALE_MIN = _c("scale_min", FLOAT, "smallest model's scale")
_SCALE_MAX = _c("scale_max", FLOAT, "largest model's scale")
_VALUE_FIRST = _c("value_first", FLOAT, "smallest model's value")
_VALUE_LAST = _c("value_last", FLOAT, "largest model's value")
_SHOTS_OPTIONAL = _c(
    "shots", INTEGER, "few-shot examples (only when the records have shots)", nullable=True, optional=True
)
_ORIGIN = _c("origin", STRING, "computed from records or read from a score table", Origin.values())
_VISION_FAMILY = _c("family", STRING, "vision family")
_DATASET = _c("task", STRING, "dataset")
_VISION_PARAMS = _c("params", INTEGER, "trainable parameters")

# ----------------------------------------------------------------------------- mirage analyze

CURVES = TableSpec(
    "curves",
    "curves.csv",
    "one point per (family, model, task, shots, metric): a metric's value at one model, with its interval",
    (
        _FAMILY,
        _c("model", STRING, "model within the family"),
        _c("scale", FLOAT, "x coordinate: parameters unless --scale says otherwise"),
        _TASK,
        _SHOTS,
        _c("metric", STRING, "metric name, as in the input (lm-eval filters as metric[filter])"),
        _c(
            "metric_kind",
            STRING,
            "the metric's kind (linear: the paper's continuous); unknown for a name mirage does not know",
            _KIND_VALUES,
        ),
        _HIGHER,
        _c("value", FLOAT, "the metric's mean over the model's test items (or the reported value)"),
        _c("ci_low", FLOAT, "lower end of the confidence interval", nullable=True),
        _c("ci_high", FLOAT, "upper end of the confidence interval", nullable=True),
        _c("n_samples", FLOAT, "test items behind the value (empty when a score table does not say)", nullable=True),
        _c("ci_method", STRING, "where the interval comes from", CIMethod.values()),
        _c("stderr", FLOAT, "standard error of the value (records: of the item mean)", nullable=True),
    ),
    curve_by_after=None,
    extra=True,
)

EMERGENCE = TableSpec(
    "emergence",
    "emergence.csv",
    "one row per curve of at least three models: its emergence score and largest step",
    (
        _FAMILY,
        _TASK,
        _METRIC,
        _METRIC_KIND,
        _N_MODELS,
        _c(
            "emergence_score",
            FLOAT,
            "Srivastava et al.'s score: sign * range / sqrt(median squared step); inf when flat then jumping",
        ),
        _c("flat_then_jump", BOOLEAN, "the median squared step is zero: flat at one value, then a jump"),
        _SHOTS,
        _c(
            "jump_share",
            FLOAT,
            "largest step between neighbouring models as a share of the range (per-token "
            "probability scale for perplexity-like metrics)",
        ),
        _c(
            "jump_resolved",
            BOOLEAN,
            "the intervals either side of the largest step are disjoint (true without intervals)",
        ),
        _c("jump_at_scale", FLOAT, "scale of the model after the largest step"),
        _HIGHER,
        _SCALE_MIN,
        _SCALE_MAX,
        _VALUE_FIRST,
        _VALUE_LAST,
    ),
    curve_by_after="shots",
)

INSUFFICIENT = TableSpec(
    "insufficient",
    "summary.json",
    "curves with too few models to score (in summary.json, insufficient_curves)",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _METRIC,
        _METRIC_KIND,
        _c("n_models", INTEGER, "models on the curve (fewer than 3)"),
    ),
    curve_by_after="shots",
)

VERDICTS = TableSpec(
    "verdicts",
    "verdicts.csv",
    "one row per family x task x discontinuous metric with a "
    "continuous metric of the same outputs; decided verdicts first",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _c("verdict", STRING, "the verdict (docs/verdicts.md)", Verdict.values()),
        _c("reason", STRING, "why, in words, with the numbers"),
        _c("discontinuous_metric", STRING, "the discontinuous metric judged"),
        _c("continuous_metric", STRING, "its continuous partner: the per-token loss metric, else the preferred one"),
        _c("n_models", INTEGER, "models on the discontinuous curve"),
        _c("min_samples", FLOAT, "fewest test items of any model", nullable=True),
        _c("apparent_emergence", BOOLEAN, "step 1: the curve looks emergent"),
        _c("floor", FLOAT, "chance level of the discontinuous metric (0, or 1/k options)", nullable=True),
        _c("value_first", FLOAT, "smallest model's value", nullable=True),
        _c("value_top", FLOAT, "best model's value"),
        _c("rise", FLOAT, "best minus smallest model's value, oriented so higher is better"),
        _c("rise_resolved", BOOLEAN, "the best model's interval lies above the smallest model's"),
        _c("flat_share", FLOAT, "share of the log-scale range over which the curve stays near its start"),
        _c("emergence_score_discontinuous", FLOAT, "emergence score of the discontinuous curve", nullable=True),
        _c("emergence_score_continuous", FLOAT, "emergence score of the continuous partner", nullable=True),
        _c(
            "jump_share_discontinuous",
            FLOAT,
            "largest step of the discontinuous curve as a share of its range",
            nullable=True,
        ),
        _c("loss_metric", STRING, "the metric whose per-token loss step 2 tested", nullable=True),
        _c("loss_alpha", FLOAT, "fitted exponent of the per-token loss in scale", nullable=True),
        _c("loss_alpha_se", FLOAT, "its standard error", nullable=True),
        _c("break_p_value", FLOAT, "p-value of the strongest break against the power law (Bonferroni)", nullable=True),
        _c("break_kind", STRING, "step or kink", BreakKind.values(), nullable=True),
        _c("break_at_scale", FLOAT, "scale of the first model after the strongest break", nullable=True),
        _c("break_size", FLOAT, "fitted step (log loss) or change of slope", nullable=True),
        _c("lag_p_value", FLOAT, "p-value that the outputs lag the model's own probabilities", nullable=True),
        _c(
            "lag_worst_gap",
            FLOAT,
            "largest shortfall of output token accuracy against the probabilities",
            nullable=True,
        ),
        _c("lag_at_scale", FLOAT, "scale of that model", nullable=True),
        _c("transform_check", STRING, "step 3: does the smooth law reproduce the curve", TransformCheck.values()),
        _c("transform_kind", STRING, "how the law was pushed through the metric", nullable=True),
        _c("transform_p_value", FLOAT, "chi-square p-value of the transform check", nullable=True),
        _c("transform_worst_z", FLOAT, "largest standardized residual (negative: observed below)", nullable=True),
        _c(
            "transform_factor",
            FLOAT,
            "fitted decoding factor (records) or effective length (score tables)",
            nullable=True,
        ),
        _c("tests", INTEGER, "tests of steps 2 and 3 run"),
    ),
    curve_by_after="shots",
)

EVIDENCE = TableSpec(
    "evidence",
    "evidence.csv",
    "one row per test behind the verdicts",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _c("discontinuous_metric", STRING, "the discontinuous metric whose verdict the test belongs to"),
        _c("test", STRING, "which test", VerdictTest.values()),
        _c("metric", STRING, "the metric the test ran on"),
        _c("statistic", FLOAT, "its statistic (rise, score z, chi-square)", nullable=True),
        _c("p_value", FLOAT, "its p-value (none for step 1)", nullable=True),
        _c("outcome", STRING, "what it found", Outcome.values() + NotApparent.values()),
        _c("detail", STRING, "the numbers, in words"),
    ),
    curve_by_after="shots",
)

PREDICTIONS = TableSpec(
    "predictions",
    "predictions.csv",
    "exact match predicted from the smooth per-token loss, per model (and a drawn curve)",
    (
        _FAMILY,
        _TASK,
        _SHOTS_OPTIONAL,
        _c(
            "row_kind",
            STRING,
            "a model of the family, a point of the predicted curve, or an extrapolated scale",
            RowKind.values(),
        ),
        _c("model", STRING, "model (empty on curve rows)", nullable=True),
        _SCALE,
        _c("n_samples", INTEGER, "the model's test items (0 on curve rows)"),
        _c("mean_target_length", FLOAT, "mean target length in tokens"),
        _c("observed_exact_match", FLOAT, "observed exact match", nullable=True),
        _c("observed_low", FLOAT, "its Wilson interval, low", nullable=True),
        _c("observed_high", FLOAT, "its Wilson interval, high", nullable=True),
        _c("predicted_exact_match", FLOAT, "mean over items of exp(-L * CE_fit(N))"),
        _c("predicted_low", FLOAT, "bootstrap band, low"),
        _c("predicted_high", FLOAT, "bootstrap band, high"),
        _c("prediction_error", FLOAT, "predicted - observed", nullable=True),
        _c("consistent", BOOLEAN, "the observed interval overlaps the predicted band", nullable=True),
        _c("source", STRING, "the continuous metric the loss comes from", PredictionSource.values()),
    ),
)

PREDICTION_FITS = TableSpec(
    "prediction_fits",
    "prediction_fits.csv",
    "the power law fitted to each family's per-token loss",
    (
        _FAMILY,
        _TASK,
        _SHOTS_OPTIONAL,
        _c("source", STRING, "the continuous metric the loss comes from (or what was asked for)"),
        _c("alpha", FLOAT, "fitted exponent of CE(N) = (N/c)^alpha", nullable=True),
        _c("alpha_low", FLOAT, "bootstrap interval of alpha, low", nullable=True),
        _c("alpha_high", FLOAT, "bootstrap interval of alpha, high", nullable=True),
        _c("c", FLOAT, "fitted scale constant (inf for a law too flat to give one)", nullable=True),
        _c("c_low", FLOAT, "bootstrap interval of c, low", nullable=True),
        _c("c_high", FLOAT, "bootstrap interval of c, high", nullable=True),
        _c("residual_sd", FLOAT, "residual standard deviation of log CE", nullable=True),
        _c("n_models", FLOAT, "models with a usable loss", nullable=True),
        _c("resampling", STRING, "what the bootstrap resampled", Resampling.values(), nullable=True),
        _c("n_boot", FLOAT, "usable bootstrap draws", nullable=True),
        _c("level", FLOAT, "confidence level", nullable=True),
        _c("note", STRING, "why there is no fit", nullable=True),
    ),
)

LENGTHS = TableSpec(
    "lengths",
    "lengths.csv",
    "exact match and edit distance by target length, per model, with the theory from its per-token probability",
    (
        _FAMILY,
        _TASK,
        _SHOTS_OPTIONAL,
        _MODEL,
        _SCALE,
        _c("length", INTEGER, "target length in tokens"),
        _c("n_samples", INTEGER, "items of that length"),
        _c("observed_exact_match", FLOAT, "observed exact match", nullable=True),
        _c("exact_match_low", FLOAT, "its Wilson interval, low", nullable=True),
        _c("exact_match_high", FLOAT, "its Wilson interval, high", nullable=True),
        _c("observed_token_edit_distance", FLOAT, "mean token edit distance", nullable=True),
        _c("token_edit_distance_low", FLOAT, "its normal interval, low", nullable=True),
        _c("token_edit_distance_high", FLOAT, "its normal interval, high", nullable=True),
        _c("p_token_hat", FLOAT, "the model's per-token probability over all its items", nullable=True),
        _c("predicted_exact_match", FLOAT, "p_hat ** L", nullable=True),
        _c("predicted_token_edit_distance", FLOAT, "L (1 - p_hat)", nullable=True),
        _c(
            "log_accuracy_slope",
            FLOAT,
            "least-squares slope of log exact match on L (theory: log p_hat)",
            nullable=True,
        ),
        _c("log_p_token_hat", FLOAT, "log p_hat", nullable=True),
        _c("source", STRING, "the continuous metric p_hat comes from", PredictionSource.values(), nullable=True),
    ),
)

RESOLUTION = TableSpec(
    "resolution",
    "resolution.csv",
    "better statistics: is each model above chance, and how many items would show it",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _MODEL,
        _SCALE,
        _c("metric", STRING, "the binary record metric", ("exact_match", "multiple_choice_grade")),
        _c("n_samples", INTEGER, "test items"),
        _c("value", FLOAT, "observed rate"),
        _c("ci_low", FLOAT, "Wilson interval, low"),
        _c("ci_high", FLOAT, "Wilson interval, high"),
        _c("chance", FLOAT, "chance level (0 for exact match, mean 1/options for multiple choice)", nullable=True),
        _c("above_chance", BOOLEAN, "the interval's low end is above chance"),
        _c("rate_used", FLOAT, "the rate the sample size is computed for"),
        _c("rate_source", STRING, "predicted from the continuous metric, or observed", RateSource.values()),
        _c(
            "samples_needed",
            FLOAT,
            "items that show the rate above chance with 80% power (inf when it is not above)",
            nullable=True,
        ),
        _c(
            "resolution",
            FLOAT,
            "1 / (items x mean target length): the smallest per-token change the set can show",
            nullable=True,
        ),
    ),
)

PASS_RATES = TableSpec(
    "pass_rates",
    "pass_rates.csv",
    "mirage eval --until-pass: each model's pass rate per sample, pooled over items, with its exact "
    "interval, and what the teacher-forced probabilities predict for the same estimator",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _MODEL,
        _SCALE,
        _c("n_items", INTEGER, "items sampled"),
        _c("until_pass", INTEGER, "the limit K of attempts per item"),
        _c("temperature", FLOAT, "sampling temperature"),
        _c("items_passed", INTEGER, "items with an exact match among their samples"),
        _c("attempts", INTEGER, "samples counted: up to each item's first pass, else K"),
        _c("pass_rate", FLOAT, "items_passed / attempts: the maximum-likelihood rate per sample"),
        _c("ci_low", FLOAT, "exact interval for the until-pass design (mirage.stats.pass_until), low"),
        _c("ci_high", FLOAT, "exact interval, high"),
        _c("ci_method", STRING, "exact, or exact from the passes alone for designs too large", PassRateMethod.values()),
        _c(
            "predicted_pass_rate",
            FLOAT,
            "E[passes] / E[attempts] from each item's exp(target_stop_logprob) (empty when some item lacks it)",
            nullable=True,
        ),
        _c("predicted_passes", FLOAT, "sum over items of 1 - (1 - pi)^K", nullable=True),
        _c("predicted_attempts", FLOAT, "sum over items of (1 - (1 - pi)^K) / pi", nullable=True),
        _c("agree", BOOLEAN, "the prediction lies in the interval (empty without a prediction)", nullable=True),
        _c("n_predicted", INTEGER, "items with a teacher-forced probability"),
        _c("mean_target_stop_prob", FLOAT, "mean over items of exp(target_stop_logprob)", nullable=True),
        _c("greedy_exact_match", FLOAT, "exact match of the greedy outputs of the same items", nullable=True),
    ),
)

SAMPLES = TableSpec(
    "samples",
    "samples.parquet",
    "per-sample metric values of the records, one column per metric",
    (
        _FAMILY,
        _MODEL,
        _SCALE,
        _TASK,
        _c("sample_id", STRING, "sample id"),
        _SHOTS,
        _c("target_length", FLOAT, "target tokens", nullable=True),
        _c("n_choices", FLOAT, "options of a multiple-choice item", nullable=True, optional=True),
        _c("correct_choice_length", FLOAT, "tokens of the correct option", nullable=True, optional=True),
    ),
    extra=True,
    ordered=False,
)

# ----------------------------------------------------------------------------- mirage theory

THEORY = TableSpec(
    "theory",
    "theory.csv",
    "every metric of the mathematical model at every (scale, target length)",
    (
        _c("params", FLOAT, "parameters N"),
        _c("length", INTEGER, "target length L in tokens"),
        _c("cross_entropy", FLOAT, "per-token cross-entropy (N/c)^alpha"),
        _c("p_token", FLOAT, "probability of one correct token, exp(-CE)"),
        _c("accuracy", FLOAT, "exact match of an L-token target, p^L"),
        _c("token_edit_distance", FLOAT, "expected token edit distance L(1-p)"),
        _c("target_logprob", FLOAT, "log-probability of the target, -L CE"),
        _c("multiple_choice_grade", FLOAT, "1 where the correct option outscores the others (p > 1/K)"),
        _c("brier_score", FLOAT, "multi-class Brier score of the option softmax"),
    ),
)

CROSSINGS = TableSpec(
    "crossings",
    "crossings.csv",
    "parameters at which accuracy p^L reaches 50 % and 10 %",
    (
        _c("length", INTEGER, "target length L"),
        _c("params_at_accuracy_0.5", FLOAT, "N with p(N)^L = 0.5"),
        _c("params_at_accuracy_0.1", FLOAT, "N with p(N)^L = 0.1"),
    ),
)

# ----------------------------------------------------------------------------- mirage meta

META_CURVES = TableSpec(
    "meta_curves",
    "meta_curves.csv",
    "the curves of analyze, with where each came from",
    CURVES.columns,
    extra=True,
    trailing=(_c("origin", STRING, "computed from per-sample records or read from a score table", Origin.values()),),
)

META_EMERGENCE = TableSpec(
    "meta_emergence",
    "meta_emergence.csv",
    "one row per curve, strongest apparent emergence first",
    (
        _c("rank", INTEGER, "1 = strongest"),
        _FAMILY,
        _TASK,
        _SHOTS,
        _METRIC,
        _METRIC_KIND,
        _HIGHER,
        _N_MODELS,
        _c("emergence_score", FLOAT, "emergence score of the values as reported", nullable=True),
        _c("flat_then_jump", BOOLEAN, "flat at one value, then a jump (on the judged scale)"),
        _c("judged_on", STRING, "the scale the relative score is computed on", JudgedOn.values()),
        _c(
            "relative_score",
            FLOAT,
            "improvement-signed emergence score on the judged scale / (n_models - 1)",
            nullable=True,
        ),
        _c("apparent_emergence", BOOLEAN, "relative score at the threshold and passing the evidence gate"),
        _c("evidence", STRING, "whether the intervals resolve the rise", EvidenceLabel.values()),
        _c("flat_share", FLOAT, "share of the log-scale range before the curve leaves its start", nullable=True),
        _c("rise", FLOAT, "best minus smallest model's value on the judged scale", nullable=True),
        _c("insufficient", BOOLEAN, "fewer than 3 models: not scored"),
        _SCALE_MIN,
        _SCALE_MAX,
        _VALUE_FIRST,
        _VALUE_LAST,
        _ORIGIN,
    ),
    extra=True,
)

META_BY_METRIC = TableSpec(
    "meta_by_metric",
    "meta_by_metric.csv",
    "share of apparent emergences per metric kind and per metric, beside each one's share of all curves",
    (
        _c("level", STRING, "a row per metric kind or per metric", ByMetricLevel.values()),
        _c("name", STRING, "the metric kind or metric"),
        _c("metric_kind", STRING, "kind", _KIND_VALUES),
        _c("n_curves", INTEGER, "curves"),
        _c("share_of_curves", FLOAT, "its curves / all curves (the base rate)"),
        _c("n_scored", INTEGER, "curves with at least 3 models"),
        _c("n_apparent", INTEGER, "apparent emergences"),
        _c("n_apparent_resolved", INTEGER, "those whose rise the intervals resolve"),
        _c("share_apparent", FLOAT, "apparent / scored", nullable=True),
        _c("share_of_all_apparent", FLOAT, "its apparent emergences / all apparent emergences", nullable=True),
        _c("n_flat_then_jump", INTEGER, "scored curves flat then jumping"),
        _c("median_relative_score", FLOAT, "median relative score of its scored curves", nullable=True),
    ),
)

META_PAIRS = TableSpec(
    "meta_pairs",
    "meta_pairs.csv",
    "each apparently emergent sharp curve with every continuous curve of the same family, task and shots",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _c("sharp_metric", STRING, "the discontinuous or nonlinear metric"),
        _c("sharp_kind", STRING, "its kind", (MetricKind.DISCONTINUOUS.value, MetricKind.NONLINEAR.value)),
        _c("continuous_metric", STRING, "the continuous metric of the same outputs"),
        _c("only_under_sharp_metric", BOOLEAN, "the continuous one is not an apparent emergence"),
        _c("relative_score_sharp", FLOAT, "relative score of the sharp curve"),
        _c("relative_score_continuous", FLOAT, "relative score of the continuous curve", nullable=True),
        _c("emergence_score_sharp", FLOAT, "emergence score of the sharp curve"),
        _c("emergence_score_continuous", FLOAT, "emergence score of the continuous curve", nullable=True),
        _c("flat_then_jump", BOOLEAN, "the sharp curve is flat then jumping"),
        _c("continuous_apparent", BOOLEAN, "the continuous curve is an apparent emergence"),
        _c("n_models_sharp", INTEGER, "models on the sharp curve"),
        _c("n_models_continuous", INTEGER, "models on the continuous curve"),
        _ORIGIN,
    ),
)

META_RESCORE = TableSpec(
    "meta_rescore",
    "meta_rescore.csv",
    "each apparent emergence from records re-scored with "
    "one continuous metric of the same samples (the paper's LaMDA experiment)",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _c("metric", STRING, "the discontinuous metric"),
        _c("relative_score", FLOAT, "its relative score"),
        _c("rescore_metric", STRING, "the continuous metric it is re-scored with (its first partner present)"),
        _c("rescore_relative_score", FLOAT, "relative score of the re-scored curve", nullable=True),
        _c("remains_emergent", BOOLEAN, "the re-scored curve is still an apparent emergence"),
    ),
)

# ----------------------------------------------------------------------------- mirage vision

VISION_SCORES = TableSpec(
    "vision_scores",
    "scores.csv",
    "a long score table of the vision families (read by mirage analyze)",
    (
        _VISION_FAMILY,
        _MODEL,
        _VISION_PARAMS,
        _DATASET,
        _c("metric", STRING, "metric (subset_accuracy_kK, reconstruction_cC, accuracy, cross_entropy, mse)"),
        _c("metric_kind", STRING, "discontinuous or linear", (MetricKind.DISCONTINUOUS.value, MetricKind.LINEAR.value)),
        _HIGHER,
        _c("value", FLOAT, "the metric on the held-out images"),
        _c("stderr", FLOAT, "standard error"),
        _c("n_samples", INTEGER, "independent units behind the value"),
        _c("seed", INTEGER, "seed of the run"),
    ),
)

VISION_EMERGENCE = TableSpec(
    "vision_emergence",
    "emergence.csv",
    "emergence score of every vision curve against parameters",
    (
        _VISION_FAMILY,
        _DATASET,
        _c("metric", STRING, "metric"),
        _c("metric_kind", STRING, "kind", (MetricKind.DISCONTINUOUS.value, MetricKind.LINEAR.value)),
        _c("n_models", INTEGER, "models"),
        _c("emergence_score", FLOAT, "emergence score of the values as reported"),
        _c("flat_then_jump", BOOLEAN, "flat then jumping"),
        _HIGHER,
        _c("oriented_score", FLOAT, "the score of the curve turned so that higher is better"),
    ),
)

VISION_PREDICTIONS = TableSpec(
    "vision_predictions",
    "_predictions.parquet",
    "every model's prediction on every held-out image",
    (
        _VISION_FAMILY,
        _MODEL,
        _VISION_PARAMS,
        _DATASET,
        _c("image_index", INTEGER, "index of the held-out image"),
        _c("label", FLOAT, "true class (classifiers)", nullable=True),
        _c("predicted", FLOAT, "predicted class (classifiers)", nullable=True),
        _c("correct", BOOLEAN, "classified right (classifiers)", nullable=True),
        _c("true_logprob", FLOAT, "log-probability of the true class (classifiers)", nullable=True),
        _c("squared_error", FLOAT, "mean squared pixel error (autoencoders)", nullable=True),
    ),
)

# ----------------------------------------------------------------------------- mirage train-family

QUICK_EVAL = TableSpec(
    "quick_eval",
    "quick_eval.csv",
    "each trained model scored on held-out problems",
    (
        _c("model", STRING, "model size (LAYERSxWIDTH)"),
        _c("params", INTEGER, "parameters"),
        _c("non_embedding_params", INTEGER, "parameters outside the embeddings"),
        _c("train_tokens", INTEGER, "training tokens seen"),
        _c("train_flops", FLOAT, "6 x non-embedding parameters x tokens"),
        _c("subset", STRING, "all problems, or multi-digit ones"),
        _c("n", INTEGER, "problems scored"),
        _c("exact_match", FLOAT, "greedy answer equals the target"),
        _c("token_logprob", FLOAT, "mean log-probability of a target token"),
        _c("token_accuracy", FLOAT, "mean probability of a target token"),
    ),
)

TRAIN_LOG = TableSpec(
    "train_log",
    "train_log.csv",
    "one model's training curve",
    (
        _c("step", INTEGER, "optimizer step"),
        _c("loss", FLOAT, "training loss on the answer tokens"),
        _c("tokens", INTEGER, "tokens seen so far"),
    ),
)

# ----------------------------------------------------------------------------- mirage forecast

_DISC_METRIC = _c("metric", STRING, "the discontinuous metric forecast")
FORECAST = TableSpec(
    "forecast",
    "forecast.csv",
    "the forecast of the discontinuous metric at every model, requested scale and point of the curve",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _DISC_METRIC,
        _c(
            "row_kind",
            STRING,
            "a model the law was fitted on, a held-out model, a requested scale, a curve point",
            ForecastRow.values(),
        ),
        _c("model", STRING, "model (empty for requested scales and curve points)", nullable=True),
        _SCALE,
        _c("n_samples", FLOAT, "the model's test items", nullable=True),
        _c("observed", FLOAT, "observed value", nullable=True),
        _c("observed_low", FLOAT, "its Wilson interval, low", nullable=True),
        _c("observed_high", FLOAT, "its Wilson interval, high", nullable=True),
        _c("predicted", FLOAT, "the forecast: the smooth law pushed through the metric's transform", nullable=True),
        _c("predicted_low", FLOAT, "the band (bootstrap over items and models), low", nullable=True),
        _c("predicted_high", FLOAT, "the band, high", nullable=True),
        _c("covered", BOOLEAN, "the observed interval overlaps the band", nullable=True),
    ),
)
FORECAST_CROSSINGS = TableSpec(
    "forecast_crossings",
    "crossings.csv",
    "where the forecast reaches the level, and where this test set would first show it above its floor",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _DISC_METRIC,
        _c("crossing", STRING, "which crossing", CrossingKind.values()),
        _c("level", FLOAT, "the level (the floor for above_floor)"),
        _c("scale", FLOAT, "the scale at which it is reached", nullable=True),
        _c("scale_low", FLOAT, "the band's scales, low", nullable=True),
        _c("scale_high", FLOAT, "the band's scales, high", nullable=True),
        _c("n_items", FLOAT, "the test set's items per model", nullable=True),
        _c("note", STRING, "why a scale is missing, in words", nullable=True),
    ),
)
FORECAST_FITS = TableSpec(
    "forecast_fits",
    "forecast_fits.csv",
    "the smooth law and transform behind each forecast, and what became of it",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _DISC_METRIC,
        _c("loss_metric", STRING, "the continuous metric whose per-token loss the law is fitted to"),
        _c("status", STRING, "forecast, flagged unreliable, or declined", ForecastStatus.values()),
        _c("reason", STRING, "why it was flagged or declined, in words", nullable=True),
        _c("n_models", INTEGER, "models the law rests on"),
        _c("scale_max_fit", FLOAT, "the largest of them", nullable=True),
        _c("alpha", FLOAT, "fitted exponent of the per-token loss", nullable=True),
        _c("alpha_se", FLOAT, "its standard error", nullable=True),
        _c("irreducible", FLOAT, "fitted irreducible loss E", nullable=True),
        _c("transform", STRING, "the transform's fitted factor, in words", nullable=True),
        _c("transform_factor", FLOAT, "decoding factor, option sharpness or effective length", nullable=True),
        _c("break_p_value", FLOAT, "break test of the loss among the models used", nullable=True),
        _c("lag_p_value", FLOAT, "output-lag test among the models used", nullable=True),
        _c("n_boot", INTEGER, "bootstrap replicates that gave a law"),
    ),
)
BACKTESTS = TableSpec(
    "backtests",
    "backtests.csv",
    "each held-out model forecast from the others, against what was observed",
    (
        _FAMILY,
        _TASK,
        _SHOTS,
        _DISC_METRIC,
        _c("held_out", INTEGER, "models held out"),
        _MODEL,
        _SCALE,
        _c("observed", FLOAT, "observed value"),
        _c("observed_low", FLOAT, "its Wilson interval, low", nullable=True),
        _c("observed_high", FLOAT, "its Wilson interval, high", nullable=True),
        _c("predicted", FLOAT, "forecast from the other models", nullable=True),
        _c("predicted_low", FLOAT, "its band, low", nullable=True),
        _c("predicted_high", FLOAT, "its band, high", nullable=True),
        _c("covered", BOOLEAN, "the observed interval overlaps the band", nullable=True),
        _c("miss", BOOLEAN, "not covered", nullable=True),
        _c("status", STRING, "the forecast's status, and why, in words"),
        _c("crossing_predicted", FLOAT, "the level's crossing scale forecast from the other models", nullable=True),
        _c("crossing_observed", FLOAT, "the level's crossing on the observed curve", nullable=True),
        _c("crossing_ratio", FLOAT, "predicted / observed crossing scale", nullable=True),
    ),
)

ANALYSIS_TABLES = (
    CURVES,
    EMERGENCE,
    VERDICTS,
    EVIDENCE,
    PREDICTIONS,
    PREDICTION_FITS,
    LENGTHS,
    RESOLUTION,
    PASS_RATES,
    SAMPLES,
)
THEORY_TABLES = (THEORY, EMERGENCE, CROSSINGS)
META_TABLES = (META_CURVES, META_EMERGENCE, META_BY_METRIC, META_PAIRS, META_RESCORE)
VISION_TABLES = (VISION_SCORES, VISION_EMERGENCE, VISION_PREDICTIONS)
TRAIN_TABLES = (QUICK_EVAL, TRAIN_LOG)
FORECAST_TABLES = (FORECAST, FORECAST_CROSSINGS, FORECAST_FITS, BACKTESTS)
# summary.json beside the tables; manifest.json of a record store
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"

# ----------------------------------------------------------------------------- contract


def set_shots(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``shots`` column as nullable whole numbers (pandas ``Int64``; added, all
    empty, where absent): the one dtype of ``shots`` in every table. In place; returns ``frame``."""
    if "shots" not in frame.columns:
        frame["shots"] = pd.NA
    frame["shots"] = frame["shots"].astype("Int64")
    return frame


def empty_frame(spec: TableSpec, curve_by: Sequence[str] = ()) -> pd.DataFrame:
    """An empty table with the spec's columns."""
    return pd.DataFrame(columns=spec.columns_for(curve_by))


def _value_problem(col: ColumnSpec, values: pd.Series) -> str | None:
    present = values[values.notna()]
    if len(present) < len(values) and not col.nullable:
        return f"{int(values.isna().sum())} empty value(s)"
    if col.dtype == FLOAT:
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.isna().any():
            return f"not a number: {present[numbers.isna()].iloc[0]!r}"
    elif col.dtype == INTEGER:
        numbers = pd.to_numeric(present, errors="coerce")
        bad = numbers.isna() | ~np.isfinite(numbers.astype(float)) | (numbers.astype(float) % 1 != 0)
        if bad.any():
            return f"not a whole number: {present[bad].iloc[0]!r}"
    elif col.dtype == BOOLEAN:
        ok = present.map(lambda v: isinstance(v, (bool, np.bool_)) or str(v) in ("True", "False"))
        if not ok.all():
            return f"not true/false: {present[~ok].iloc[0]!r}"
    elif col.dtype == STRING:
        ok = present.map(lambda v: isinstance(v, str) or not (isinstance(v, float) and math.isnan(v)))
        if not ok.all():
            return f"not a string: {present[~ok].iloc[0]!r}"
    if col.values is not None:
        allowed = set(col.values)
        text = present.map(str)
        if not text.isin(allowed).all():
            return f"{text[~text.isin(allowed)].iloc[0]!r} is not one of {', '.join(map(repr, col.values))}"
    return None


def check_table(frame: pd.DataFrame, spec: TableSpec, curve_by: Sequence[str] = ()) -> list[str]:
    """Every way ``frame`` departs from ``spec``: missing or misplaced columns, undeclared extra
    columns, and values of the wrong dtype, empty where not allowed or outside the vocabulary.
    An empty list means the table keeps the contract.

    >>> check_table(pd.DataFrame({"step": [1, 2], "loss": [0.5, "x"], "tokens": [10, 20]}), TRAIN_LOG)
    ["column 'loss': not a number: 'x'"]
    """
    problems = []
    expected = spec.columns_for(curve_by, present=frame.columns)
    trailing = [c.name for c in spec.trailing]
    got = list(frame.columns)
    if trailing:
        if got[-len(trailing) :] != trailing:
            problems.append(f"the last column(s) are {got[-len(trailing) :]} where the spec has {trailing}")
        got = got[: -len(trailing)]
    missing = [c for c in expected if c not in got]
    if not spec.ordered:
        if missing:
            problems.append(f"missing column(s) {missing}")
    elif got[: len(expected)] != expected:
        problems.append(
            f"columns {got[: len(expected)]} where the spec has {expected}"
            + (f" (missing {missing})" if missing else "")
        )
    elif len(got) > len(expected) and not spec.extra:
        problems.append(f"undeclared column(s) {got[len(expected) :]}")
    for col in spec.columns + spec.trailing:
        if col.name in frame.columns:
            problem = _value_problem(col, frame[col.name])
            if problem:
                problems.append(f"column {col.name!r}: {problem}")
    return problems


def markdown_columns(spec: TableSpec) -> str:
    """The spec as a Markdown table (column, type, meaning): what the README shows."""
    lines = [f"`{spec.file}`: {spec.meaning}.", "", "| column | type | meaning |", "|---|---|---|"]
    for c in spec.columns + spec.trailing:
        kind = c.dtype + (", may be empty" if c.nullable else "") + (", optional" if c.optional else "")
        meaning = c.meaning + (f" ({', '.join(v for v in c.values if v)})" if c.values else "")
        lines.append(f"| `{c.name}` | {kind} | {meaning} |")
    if spec.curve_by_after:
        lines.append(f"| *--curve-by columns* | | after `{spec.curve_by_after}` |")
    if spec.extra:
        lines.append(
            "| *further columns* | | "
            + ("one per record metric" if spec is SAMPLES else "the inputs' own columns, as given")
            + " |"
        )
    return "\n".join(lines)


assert set(KINDS) <= set(_KIND_VALUES)


# the commands' tables as the README lists them (theory's emergence.csv is analyze's)
README_GROUPS: tuple[tuple[str, tuple[TableSpec, ...]], ...] = (
    ("mirage analyze", ANALYSIS_TABLES + (INSUFFICIENT,)),
    ("mirage theory", (THEORY, CROSSINGS)),
    ("mirage meta", META_TABLES),
    ("mirage forecast", FORECAST_TABLES),
    ("mirage vision", VISION_TABLES),
    ("mirage train-family", TRAIN_TABLES),
)


def readme_tables() -> str:
    """The README's "Output tables" section: every spec as a Markdown table, command by command."""
    parts = []
    for command, specs in README_GROUPS:
        parts.append(f"#### `{command}`")
        if command == "mirage theory":
            parts.append(
                "`emergence.csv`: the table of `mirage analyze` (family `theory`, one task per target length)."
            )
        parts.extend(markdown_columns(spec) for spec in specs)
    return "\n\n".join(parts)
