"""From inputs to curves, emergence scores and verdicts (the engine behind ``mirage analyze``).

Data flow: records -> per-sample metrics -> curves (+ intervals); score tables -> curves
(+ intervals from n_samples (Wilson) or stderr); curves -> emergence scores; curves and
per-sample metrics -> verdicts (:mod:`mirage.verdicts`, with the tests of :mod:`mirage.evidence`).
All functions are pure and return tidy pandas tables; :func:`analyze` writes them out.

The emergence score (Srivastava et al. 2022) is reported for every curve but does not decide a
verdict: with a handful of models it cannot tell sharp from smooth (a straight line over 8
models scores 7; a power-law log-probability scores 10-15). The verdict rule is described in
:mod:`mirage.verdicts` and ``docs/verdicts.md``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import MirageInputError
from .metrics import (
    CONTINUOUS_KINDS,
    METRICS,
    canonical_metric_name,
    compute_sample_metrics,
    metric_kind,
)
from .readers import Inputs
from .stats import (
    bootstrap_mean_ci,
    emergence_score,
    jump_sharpness,
    stderr_interval,
    wilson_interval,
)
from .verdicts import (
    VERDICT_EXPLAINED,
    VERDICT_INSUFFICIENT,
    VERDICT_NONE,
    VERDICT_NOT_EXPLAINED,
    VERDICTS,
    VerdictSettings,
    verdicts_table,
)

CURVE_COLUMNS = [
    "family", "model", "scale", "task", "shots", "metric", "metric_kind", "higher_is_better",
    "value", "ci_low", "ci_high", "n_samples", "ci_method", "stderr",
]

__all__ = ["VERDICTS", "VERDICT_EXPLAINED", "VERDICT_INSUFFICIENT", "VERDICT_NONE", "VERDICT_NOT_EXPLAINED",
           "AnalysisResult", "AnalysisSettings", "analyze", "collect_curves", "curves_from_records",
           "curves_from_scores", "emergence_table", "run_analysis"]


@dataclass(frozen=True)
class AnalysisSettings:
    """Every knob of an analysis, recorded in summary.json; validated when made.

    ``bootstrap``: resamples for intervals of non-binary record metrics (0: none); ``seed``;
    ``level``: confidence level of intervals; ``curve_by``: extra score-table columns that are
    part of a curve's identity (e.g. ``first_operand``). The verdict knobs (``min_models`` ...
    ``transform_tolerance``) are those of :class:`mirage.verdicts.VerdictSettings`, documented
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
    kind_overrides: dict = field(default_factory=dict)
    answer_regex: str | None = None

    def __post_init__(self) -> None:
        for name in ("bootstrap", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise MirageInputError(f"must be a whole number >= 0, got {value!r}", name)
        self.verdict_settings()  # validates the verdict knobs, naming the one that is wrong

    def verdict_settings(self) -> VerdictSettings:
        """The verdict rule's settings."""
        return VerdictSettings(level=self.level, test_level=self.test_level, min_models=self.min_models,
                               min_samples=self.min_samples, min_effect=self.min_effect, floor_band=self.floor_band,
                               min_flat_share=self.min_flat_share, loss_tolerance=self.loss_tolerance,
                               lag_tolerance=self.lag_tolerance, transform_tolerance=self.transform_tolerance,
                               curve_by=tuple(self.curve_by))

    def as_dict(self) -> dict:
        """JSON-ready, as recorded in summary.json."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics) if self.metrics else None
        out["curve_by"] = list(self.curve_by)
        out["kind_overrides"] = dict(self.kind_overrides)
        return out


# ----------------------------------------------------------------------------- curves


def curves_from_records(
    records: pa.Table, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample metrics and the curves they average into.

    Binary metrics (exact match, multiple-choice grade) get Wilson intervals, which stay
    honest at 0 of n; the others a percentile bootstrap over items, paired across models and
    metrics (one set of resamples per family and task), seeded by ``settings.seed``.
    """
    samples = compute_sample_metrics(records, settings.metrics, settings.answer_regex)
    if "shots" not in samples.columns:
        samples["shots"] = pd.NA
    samples["shots"] = samples["shots"].astype("Int64")
    metric_names = [c for c in samples.columns if c in METRICS]
    rows = []
    for g_idx, ((family, task, shots), group) in enumerate(
        samples.groupby(["family", "task", "shots"], sort=True, dropna=False)
    ):
        models = group[["model", "scale"]].drop_duplicates().sort_values(["scale", "model"])
        boot_metrics = [m for m in metric_names if not METRICS[m].binary and group[m].notna().any()]
        boot = {}
        if boot_metrics and settings.bootstrap > 0:
            # items x (models * metrics) matrix, NaN where a model lacks an item
            wide = group.pivot(index="sample_id", columns="model", values=boot_metrics)
            wide = wide.reindex(columns=pd.MultiIndex.from_product([boot_metrics, models["model"]]))
            lo, hi = bootstrap_mean_ci(wide.to_numpy(dtype=float), settings.bootstrap, settings.level,
                                       seed=_group_seed(settings.seed, g_idx))
            for j, key in enumerate(wide.columns):
                boot[key] = (lo[j], hi[j])
        by_model = group.groupby("model", sort=False)
        for metric in metric_names:
            meta = METRICS[metric]
            kind = settings.kind_overrides.get(metric, meta.kind)
            for model, scale in models.itertuples(index=False):
                vals = by_model.get_group(model)[metric].to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals) == 0:
                    continue
                value = float(vals.mean())
                if meta.binary:
                    lo, hi = wilson_interval(vals.sum(), len(vals), settings.level)
                    lo, hi, method = float(lo), float(hi), "wilson"
                elif (metric, model) in boot:
                    lo, hi = boot[(metric, model)]
                    method = "bootstrap"
                else:
                    lo = hi = math.nan
                    method = "none"
                rows.append(dict(family=family, model=model, scale=float(scale), task=task, shots=shots,
                                 metric=metric, metric_kind=kind, higher_is_better=meta.higher_is_better,
                                 value=value, ci_low=lo, ci_high=hi, n_samples=len(vals), ci_method=method,
                                 stderr=float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else math.nan))
    return _curve_frame(rows), samples


def _group_seed(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, index])


def curves_from_scores(scores: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()) -> tuple[pd.DataFrame, list[str]]:
    """Curves from a long score table; returns (curves, unknown metric names).

    Intervals: the table's ``stderr`` (normal, at ``settings.level``) where given; otherwise a
    Wilson interval for a proportion when ``n_samples`` is known; otherwise none.
    """
    frame = scores.copy()
    if "shots" not in frame.columns:
        frame["shots"] = pd.NA
    frame["shots"] = frame["shots"].astype("Int64")
    kinds, higher, unknown = [], [], set()
    explicit = frame["metric_kind"] if "metric_kind" in frame.columns else pd.Series([None] * len(frame))
    for name, given in zip(frame["metric"], explicit):
        known = metric_kind(name, settings.kind_overrides)
        if isinstance(given, str) and given and canonical_metric_name(name) not in settings.kind_overrides:
            kinds.append(given)
            higher.append(known[1] if known else True)
        elif known is None:
            kinds.append("unknown")
            higher.append(True)
            unknown.add(name)
        else:
            kinds.append(known[0])
            higher.append(known[1])
    frame["metric_kind"] = kinds
    if "higher_is_better" in frame.columns:
        frame["higher_is_better"] = frame["higher_is_better"].fillna(pd.Series(higher)).astype(bool)
    else:
        frame["higher_is_better"] = higher
    stderr = frame["stderr"].to_numpy(dtype=float)
    value = frame["value"].to_numpy(dtype=float)
    # a stderr of 0 is no interval: lm-eval writes 0 at 0/n and n/n, where the truth is "below 1/n"
    stderr = np.where(stderr > 0, stderr, np.nan)
    lo, hi = stderr_interval(value, stderr, settings.level)
    method = np.where(np.isfinite(stderr), "stderr", "none").astype(object)
    n = frame["n_samples"].to_numpy(dtype=float) if "n_samples" in frame.columns else np.full(len(frame), np.nan)
    # proportions with a known n: Wilson, which stays honest at 0 of n (and beats stderr's normal interval)
    prop = np.isfinite(n) & (n > 0) & (frame["metric_kind"] == "discontinuous").to_numpy() \
        & (frame["value"].between(0, 1)).to_numpy()
    if prop.any():
        wl, wh = wilson_interval(value[prop] * n[prop], n[prop], settings.level)
        lo[prop], hi[prop] = wl, wh
        method[prop] = "wilson"
    frame["ci_low"], frame["ci_high"], frame["ci_method"] = lo, hi, method
    frame["n_samples"] = n
    missing = [c for c in settings.curve_by if c not in frame.columns]
    if missing:
        raise MirageInputError(f"no column(s) {', '.join(map(repr, missing))} in the score table", "--curve-by")
    return _curve_frame(frame, tuple(settings.curve_by)), sorted(unknown)


def _curve_frame(rows, curve_by: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS + list(curve_by))
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS and c not in ("source",)]
    frame = frame[CURVE_COLUMNS + extra]
    frame["shots"] = frame["shots"].astype("Int64")
    order = ["family", "task", "shots", *curve_by, "metric", "scale", "model"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def curve_id(settings: AnalysisSettings) -> list[str]:
    """The columns that identify one curve: family, task, shots, the curve-by columns, metric."""
    return ["family", "task", "shots", *settings.curve_by, "metric"]


def collect_curves(inputs: Inputs, settings: AnalysisSettings):
    """(curves, per-sample metrics or None, unknown metric names)."""
    parts, samples, unknown = [], None, []
    if inputs.records is not None:
        if settings.curve_by:
            raise MirageInputError("applies to score tables; split records with --filter instead", "--curve-by")
        rec_curves, samples = curves_from_records(inputs.records, settings)
        parts.append(rec_curves)
    if inputs.scores is not None:
        sc_curves, unknown = curves_from_scores(inputs.scores, settings)
        parts.append(sc_curves)
    curves = pd.concat([p for p in parts if not p.empty], ignore_index=True, sort=False) if parts else pd.DataFrame(columns=CURVE_COLUMNS)
    dup = curves.duplicated(curve_id(settings) + ["model"])
    if dup.any():
        row = curves[dup].iloc[0]
        hint = "" if settings.curve_by else " (if a column such as an operand tells the curves apart, pass --curve-by)"
        raise MirageInputError(
            f"the same curve point comes twice: family {row['family']!r}, model {row['model']!r}, "
            f"task {row['task']!r}, metric {row['metric']!r}{hint}"
        )
    return curves, samples, unknown


# ----------------------------------------------------------------------------- scales


_PROB_SCALE = {
    "target_mean_logprob": np.exp,
    "ppl": lambda v: 1.0 / v,
    "perplexity": lambda v: 1.0 / v,
    "word_perplexity": lambda v: 1.0 / v,
    "byte_perplexity": lambda v: 1.0 / v,
    "bits_per_byte": lambda v: np.exp2(-v),
}


def probability_scale(metric: str, values) -> np.ndarray:
    """Map a continuous metric to its per-token probability scale where it has one."""
    fn = _PROB_SCALE.get(canonical_metric_name(metric))
    values = np.asarray(values, dtype=float)
    if fn is None:
        return values
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return fn(values)


def per_token_loss(metric: str, values, mean_target_length=None) -> np.ndarray | None:
    """Per-token cross-entropy implied by a continuous metric, or None if it implies none."""
    name = canonical_metric_name(metric)
    v = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "target_mean_logprob":
            return -v
        if name in ("ppl", "perplexity", "word_perplexity", "byte_perplexity"):
            return np.log(v)
        if name == "bits_per_byte":
            return v * np.log(2.0)
        if name == "token_edit_distance" and mean_target_length is not None:
            frac = v / np.asarray(mean_target_length, dtype=float)
            return np.where(frac < 1, -np.log1p(-np.clip(frac, 0, 1)), np.nan)
    return None


# ----------------------------------------------------------------------------- emergence


def emergence_table(curves: pd.DataFrame, curve_by: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(emergence scores of curves with >= 3 models, curves with too few models to score)."""
    rows, short = [], []
    ident = ["family", "task", "shots", *curve_by, "metric"]
    for key, g in curves.groupby(ident, sort=True, dropna=False):
        g = g.sort_values("scale", kind="stable")
        base = dict(zip(ident, key), metric_kind=g["metric_kind"].iloc[0], n_models=len(g))
        metric = base["metric"]
        es = emergence_score(g["scale"], g["value"])
        if es.insufficient:
            short.append(base)
            continue
        sh = jump_sharpness(g["scale"], _scaled(metric, g), *_scaled_ci(metric, g))
        rows.append(dict(base, emergence_score=es.score, flat_then_jump=es.flat_then_jump,
                         jump_share=sh.jump_share, jump_resolved=sh.resolved,
                         jump_at_scale=float(g["scale"].iloc[sh.jump_index]) if sh.n_models > 1 else math.nan,
                         higher_is_better=bool(g["higher_is_better"].iloc[0]),
                         scale_min=float(g["scale"].min()), scale_max=float(g["scale"].max()),
                         value_first=float(g["value"].iloc[0]), value_last=float(g["value"].iloc[-1])))
    cols = ["family", "task", "metric", "metric_kind", "n_models", "emergence_score", "flat_then_jump", "shots",
            *curve_by, "jump_share", "jump_resolved", "jump_at_scale", "higher_is_better", "scale_min", "scale_max",
            "value_first", "value_last"]
    table = pd.DataFrame(rows, columns=cols)
    table["shots"] = table["shots"].astype("Int64")
    return table, pd.DataFrame(short, columns=["family", "task", "shots", *curve_by, "metric", "metric_kind",
                                               "n_models"])


def _scaled(metric: str, g: pd.DataFrame) -> np.ndarray:
    kind = g["metric_kind"].iloc[0]
    v = g["value"].to_numpy(dtype=float)
    return probability_scale(metric, v) if kind in CONTINUOUS_KINDS else v


def _scaled_ci(metric: str, g: pd.DataFrame):
    kind = g["metric_kind"].iloc[0]
    lo, hi = g["ci_low"].to_numpy(dtype=float), g["ci_high"].to_numpy(dtype=float)
    if kind in CONTINUOUS_KINDS:
        a, b = probability_scale(metric, lo), probability_scale(metric, hi)
        return np.minimum(a, b), np.maximum(a, b)
    return lo, hi


# ----------------------------------------------------------------------------- analyze


@dataclass(frozen=True)
class AnalysisResult:
    """Everything ``mirage analyze`` computes; the tables are what it writes as CSV."""

    curves: pd.DataFrame
    emergence: pd.DataFrame
    verdicts: pd.DataFrame
    insufficient: pd.DataFrame
    samples: pd.DataFrame | None
    summary: dict
    predictions: pd.DataFrame | None = None
    prediction_fits: pd.DataFrame | None = None
    lengths: pd.DataFrame | None = None
    resolution: pd.DataFrame | None = None
    evidence: pd.DataFrame | None = None


def run_analysis(inputs: Inputs, settings: AnalysisSettings = AnalysisSettings()) -> AnalysisResult:
    """Compute curves, emergence scores and verdicts (no files written)."""
    curves, samples, unknown = collect_curves(inputs, settings)
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values to analyse")
    emergence, insufficient = emergence_table(curves, tuple(settings.curve_by))
    verdicts, evidence = verdicts_table(curves, samples, settings.verdict_settings())
    summary = _summary(inputs, settings, curves, emergence, verdicts, insufficient, unknown)
    predictions = fits = lengths = None
    if samples is not None and "exact_match" in samples.columns and (
        samples.columns.intersection(["target_mean_logprob", "token_edit_distance"]).size
    ):
        predictions, fits, lengths = predict_exact_match(samples, settings)
        summary["predictions"] = _prediction_summary(predictions)
    resolution = resolution_table(curves, samples, predictions, settings) if samples is not None else None
    if resolution is not None and len(resolution):
        summary["above_chance"] = {"models": int(len(resolution)),
                                   "above_chance": int(resolution["above_chance"].sum())}
    return AnalysisResult(curves, emergence, verdicts, insufficient, samples, summary, predictions, fits, lengths,
                          resolution, evidence)


def resolution_table(curves: pd.DataFrame, samples: pd.DataFrame, predictions: pd.DataFrame | None = None,
                     settings: AnalysisSettings = AnalysisSettings(), power: float = 0.8) -> pd.DataFrame:
    """Better statistics: is each model above chance, and how many items would show it?

    One row per model and binary record metric: the Wilson interval, the chance level (0 for
    exact match, mean 1/n_choices for multiple choice), whether the lower bound clears chance,
    and the items needed to show a rate above chance with ``power`` at one-sided level
    ``(1+level)/2`` (:func:`mirage.stats.samples_needed`). The rate used is the exact match
    predicted from the continuous metric where available (so a model scoring 0/n still gets an
    answer), else the observed rate. ``resolution`` is 1/(items x mean target length), the
    smallest per-token change the test set can register (Schaeffer et al., Sec. 3).
    """
    from .stats import samples_needed

    binary = curves[curves["ci_method"] == "wilson"]
    binary = binary[binary["metric"].isin(["exact_match", "multiple_choice_grade"])]
    if binary.empty:
        return pd.DataFrame()
    s = samples.copy()
    s["shots"] = s["shots"].astype("Int64")
    keys = ["family", "task", "shots", "model"]
    if "n_choices" not in s.columns:
        s["n_choices"] = np.nan
    s["inverse_choices"] = np.where(s["n_choices"] > 0, 1.0 / s["n_choices"], np.nan)
    per_model = s.groupby(keys, dropna=False).agg(mean_length=("target_length", "mean"),
                                                   chance_mc=("inverse_choices", "mean"))
    table = binary.merge(per_model.reset_index(), on=keys, how="left")
    table["predicted"] = np.nan
    if predictions is not None and len(predictions):
        p = predictions[predictions["row_kind"] == "model"].copy()
        if "shots" not in p.columns:
            p["shots"] = pd.NA
        p["shots"] = p["shots"].astype("Int64")
        table = table.drop(columns="predicted").merge(
            p[keys + ["predicted_exact_match"]].rename(columns={"predicted_exact_match": "predicted"}),
            on=keys, how="left")
    is_em = (table["metric"] == "exact_match").to_numpy()
    chance = np.where(is_em, 0.0, table["chance_mc"].to_numpy(dtype=float))
    use_pred = is_em & table["predicted"].notna().to_numpy()
    rate = np.where(use_pred, table["predicted"].to_numpy(dtype=float), table["value"].to_numpy(dtype=float))
    n = np.where(np.isfinite(chance), samples_needed(rate, np.nan_to_num(chance), level=(1 + settings.level) / 2,
                                                      power=power), np.nan)
    out = table[keys + ["scale", "metric", "n_samples", "value", "ci_low", "ci_high"]].copy()
    out["n_samples"] = out["n_samples"].astype(int)
    out["chance"] = chance
    out["above_chance"] = out["ci_low"].to_numpy(dtype=float) > chance
    out["rate_used"] = rate
    out["rate_source"] = np.where(use_pred, "predicted", "observed")
    out["samples_needed"] = n
    mean_len = table["mean_length"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["resolution"] = np.where(mean_len > 0, 1.0 / (out["n_samples"] * mean_len), np.nan)
    return out.reset_index(drop=True)


def predict_exact_match(samples: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()):
    """The paper's model applied to the records: (predictions, fits, by-length table).

    Fits a power law to each family's per-token loss (from the continuous metric of the same
    outputs) and predicts every model's exact match, with bootstrap bands; and groups samples
    by target length (see :mod:`mirage.theory`).
    """
    from .theory import length_analysis, predict_from_sample_metrics

    s = samples.copy()
    if s["shots"].isna().all():
        s = s.drop(columns="shots")
    s = s[s["exact_match"].notna()]
    pred = predict_from_sample_metrics(s, n_boot=max(settings.bootstrap, 100), seed=settings.seed,
                                       level=settings.level)
    return pred.predictions, pred.fits, length_analysis(s, level=settings.level)


def _prediction_summary(predictions: pd.DataFrame) -> dict:
    rows = predictions[predictions["row_kind"] == "model"]
    if rows.empty:
        return {"n_models": 0}
    consistent = rows["consistent"].dropna().astype(bool)
    return {
        "n_models": int(len(rows)),
        "consistent_share": float(consistent.mean()) if len(consistent) else None,
        "median_abs_error": float(rows["prediction_error"].abs().median()),
    }


def _summary(inputs, settings, curves, emergence, verdicts, insufficient, unknown) -> dict:
    from . import __version__

    counts = {v: int((verdicts["verdict"] == v).sum()) for v in VERDICTS}
    finite = emergence["emergence_score"].replace([np.inf, -np.inf], np.nan)
    return {
        "mirage_version": __version__,
        "inputs": list(inputs.sources),
        "notes": list(inputs.notes),
        "scale_column": inputs.scale_column,
        "settings": settings.as_dict(),
        "n_families": int(curves["family"].nunique()),
        "n_models": int(curves[["family", "model"]].drop_duplicates().shape[0]),
        "n_tasks": int(curves["task"].nunique()),
        "n_metrics": int(curves["metric"].nunique()),
        "n_curves": int(curves.groupby(curve_id(settings), dropna=False).ngroups),
        "has_records": inputs.records is not None,
        "n_records": int(inputs.records.num_rows) if inputs.records is not None else 0,
        "verdict_counts": counts,
        "flat_then_jump_curves": int(emergence["flat_then_jump"].sum()),
        "max_finite_emergence_score": float(finite.abs().max()) if finite.notna().any() else None,
        "unknown_metrics": unknown,
        "insufficient_curves": insufficient.assign(shots=insufficient["shots"].astype(object))
        .to_dict(orient="records") if len(insufficient) < 200 else f"{len(insufficient)} curves",
    }


def analyze(
    inputs: Inputs,
    out_dir,
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    max_figures: int = 24,
    title: str = "mirage analysis",
    progress: bool = False,
    featured_tasks: tuple[str, ...] = (),
) -> AnalysisResult:
    """Run the analysis and write the output contract atomically into ``out_dir``.

    Files: ``curves.csv``, ``emergence.csv``, ``verdicts.csv``, ``evidence.csv`` (every test behind
    the verdicts), ``summary.json``,
    ``figures/*.png``, ``report.html`` (and ``samples.parquet`` when records were given).
    Either every file is replaced or none is.
    """
    from . import report
    from .fsio import atomic_dir, write_csv, write_json, write_parquet

    result = run_analysis(inputs, settings)
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / "curves.csv", result.curves)
        write_csv(tmp / "emergence.csv", result.emergence)
        write_csv(tmp / "verdicts.csv", result.verdicts)
        if result.evidence is not None:
            write_csv(tmp / "evidence.csv", result.evidence)
        if result.samples is not None:
            write_parquet(tmp / "samples.parquet", result.samples)
        if result.predictions is not None:
            write_csv(tmp / "predictions.csv", result.predictions)
            write_csv(tmp / "prediction_fits.csv", result.prediction_fits)
            write_csv(tmp / "lengths.csv", result.lengths)
        if result.resolution is not None and len(result.resolution):
            write_csv(tmp / "resolution.csv", result.resolution)
        figures = report.write_task_figures(result, tmp / "figures", max_figures=max_figures, progress=progress,
                                            featured=featured_tasks,
                                            overlay_factory=report.prediction_overlay(result.predictions))
        summary = dict(result.summary, figures=[f.name for f, _ in figures])
        write_json(tmp / "summary.json", summary)
        report.write_analysis_report(tmp / "report.html", result, figures, title=title)
    return dataclasses.replace(result, summary=summary)

