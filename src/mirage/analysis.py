"""From inputs to curves, emergence scores and verdicts (the engine behind ``mirage analyze``).

Data flow: records -> per-sample metrics -> curves (+ intervals); score tables -> curves
(+ intervals from stderr or Wilson); curves -> emergence scores, sharpness, verdicts.
All functions are pure and return tidy pandas tables; :func:`analyze` writes them out.

**Verdict rule** (per family, task[, shots] and discontinuous metric, paired with a
continuous metric of the same outputs):

1. *insufficient data* when the pair has fewer than ``min_models`` models (default 4) or a
   model has fewer than ``min_samples`` samples (records only; default 10).
2. A curve is **sharp** when its largest step between neighbouring models carries at least
   ``sharpness_threshold`` (default 0.5) of its whole range *and* that step is resolved (the
   confidence intervals either side of it do not overlap). Continuous metrics are measured on
   their per-token probability scale (``exp`` of a mean log-probability, ``1/ppl``,
   ``2**-bits_per_byte``) so a power-law loss is not mistaken for a jump at small scale.
3. Transform check (where a per-token loss CE can be derived from the continuous metric):
   push each model's CE through ``accuracy = exp(-L_eff * CE)`` with one fitted effective
   length ``L_eff`` and ask whether that lies within every model's interval on the
   discontinuous curve (plus ``transform_tolerance``): is the discontinuous curve what the
   paper's model says the continuous one implies?
4. sharp discontinuous & smooth continuous & transform check not failed ->
   **explained by metric**; sharp discontinuous & (sharp continuous or failed check) ->
   **not explained by metric choice**; otherwise **no sharp transition**.

The emergence score (Srivastava et al. 2022) is reported for every curve but is not the basis
of the verdict: with few models it does not separate sharp from smooth curves (a straight line
over 8 models scores 7; a power-law log-probability scores 10-15).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.optimize import minimize_scalar

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

CURVE_COLUMNS = [
    "family", "model", "scale", "task", "shots", "metric", "metric_kind", "higher_is_better",
    "value", "ci_low", "ci_high", "n_samples", "ci_method", "stderr",
]
CURVE_ID = ["family", "task", "shots", "metric"]

VERDICT_EXPLAINED = "explained by metric"
VERDICT_NOT_EXPLAINED = "not explained by metric choice"
VERDICT_NONE = "no sharp transition"
VERDICT_INSUFFICIENT = "insufficient data"
VERDICTS = (VERDICT_EXPLAINED, VERDICT_NOT_EXPLAINED, VERDICT_NONE, VERDICT_INSUFFICIENT)


@dataclass(frozen=True)
class AnalysisSettings:
    """Every knob of an analysis, recorded in summary.json."""

    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95
    sharpness_threshold: float = 0.5
    min_models: int = 4
    min_samples: int = 10
    transform_tolerance: float = 0.05
    metrics: tuple[str, ...] | None = None
    kind_overrides: dict = field(default_factory=dict)
    answer_regex: str | None = None


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
    lo, hi = stderr_interval(frame["value"].to_numpy(dtype=float), stderr, settings.level)
    method = np.where(np.isfinite(stderr), "stderr", "none").astype(object)
    n = frame["n_samples"].to_numpy(dtype=float) if "n_samples" in frame.columns else np.full(len(frame), np.nan)
    prop = (~np.isfinite(stderr)) & np.isfinite(n) & (n > 0) & (frame["metric_kind"] == "discontinuous").to_numpy() \
        & (frame["value"].between(0, 1)).to_numpy()
    if prop.any():
        wl, wh = wilson_interval(frame["value"].to_numpy()[prop] * n[prop], n[prop], settings.level)
        lo[prop], hi[prop] = wl, wh
        method[prop] = "wilson"
    frame["ci_low"], frame["ci_high"], frame["ci_method"] = lo, hi, method
    frame["n_samples"] = n
    return _curve_frame(frame), sorted(unknown)


def _curve_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    extra = [c for c in frame.columns if c not in CURVE_COLUMNS and c not in ("source",)]
    frame = frame[CURVE_COLUMNS + extra]
    frame["shots"] = frame["shots"].astype("Int64")
    return frame.sort_values(["family", "task", "shots", "metric", "scale", "model"], kind="stable").reset_index(drop=True)


def build_curves(inputs: Inputs, settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """All curves of the inputs (records and score tables), one table."""
    return collect_curves(inputs, settings)[0]


def collect_curves(inputs: Inputs, settings: AnalysisSettings):
    """(curves, per-sample metrics or None, unknown metric names)."""
    parts, samples, unknown = [], None, []
    if inputs.records is not None:
        rec_curves, samples = curves_from_records(inputs.records, settings)
        parts.append(rec_curves)
    if inputs.scores is not None:
        sc_curves, unknown = curves_from_scores(inputs.scores, settings)
        parts.append(sc_curves)
    curves = pd.concat([p for p in parts if not p.empty], ignore_index=True, sort=False) if parts else pd.DataFrame(columns=CURVE_COLUMNS)
    dup = curves.duplicated(["family", "model", "task", "shots", "metric"])
    if dup.any():
        row = curves[dup].iloc[0]
        raise MirageInputError(
            f"the same curve point comes from two inputs: family {row['family']!r}, model {row['model']!r}, "
            f"task {row['task']!r}, metric {row['metric']!r}"
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


def emergence_table(curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(emergence scores of curves with >= 3 models, curves with too few models to score)."""
    rows, short = [], []
    for key, g in curves.groupby(CURVE_ID, sort=True, dropna=False):
        g = g.sort_values("scale", kind="stable")
        fam, task, shots, metric = key
        base = dict(family=fam, task=task, shots=shots, metric=metric, metric_kind=g["metric_kind"].iloc[0],
                    n_models=len(g))
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
            "jump_share", "jump_resolved", "jump_at_scale", "higher_is_better", "scale_min", "scale_max",
            "value_first", "value_last"]
    table = pd.DataFrame(rows, columns=cols)
    table["shots"] = table["shots"].astype("Int64")
    return table, pd.DataFrame(short, columns=["family", "task", "shots", "metric", "metric_kind", "n_models"])


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


def curve_sharpness(metric: str, curve: pd.DataFrame):
    """Sharpness of one curve (rows of ``curves`` for one family, task and metric) measured the way
    the emergence table and the verdicts measure it: sorted by scale, continuous metrics on their
    per-token probability scale, with their intervals. ``.is_sharp(settings.sharpness_threshold)``
    is the verdicts' "sharp"."""
    g = curve.sort_values("scale", kind="stable")
    return jump_sharpness(g["scale"], _scaled(metric, g), *_scaled_ci(metric, g))


# ----------------------------------------------------------------------------- verdicts

_PARTNERS = {
    "exact_match": ("target_mean_logprob", "token_edit_distance", "char_edit_distance", "target_logprob"),
    "multiple_choice_grade": ("brier_score", "target_mean_logprob"),
}
_CONTINUOUS_PREFERENCE = (
    "target_mean_logprob", "ppl", "perplexity", "word_perplexity", "bits_per_byte", "byte_perplexity",
    "log_likelihood", "brier_score", "token_edit_distance", "char_edit_distance", "target_logprob",
)


def _pick_partner(disc: str, continuous: list[str]) -> str:
    for name in _PARTNERS.get(disc, ()) + _CONTINUOUS_PREFERENCE:
        if name in continuous:
            return name
    return sorted(continuous)[0]


def verdicts_table(curves: pd.DataFrame, samples: pd.DataFrame | None = None,
                   settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """One verdict per (family, task, shots, discontinuous metric) that has a continuous partner."""
    rows = []
    lengths = None
    if samples is not None and "target_length" in samples.columns:
        s = samples.copy()
        s["shots"] = s["shots"].astype("Int64")
        lengths = s.groupby(["family", "task", "shots", "model"], dropna=False)["target_length"].mean()
    for (fam, task, shots), g in curves.groupby(["family", "task", "shots"], sort=True, dropna=False):
        kinds = g.drop_duplicates("metric").set_index("metric")["metric_kind"]
        disc = [m for m, k in kinds.items() if k == "discontinuous"]
        cont = [m for m, k in kinds.items() if k in CONTINUOUS_KINDS]
        if not disc or not cont:
            continue
        for d in sorted(disc):
            c = _pick_partner(d, cont)
            rows.append(_verdict(fam, task, shots, d, c, g, lengths, settings))
    cols = ["family", "task", "shots", "verdict", "discontinuous_metric", "continuous_metric", "n_models",
            "min_samples", "jump_share_discontinuous", "jump_resolved_discontinuous", "jump_at_scale",
            "jump_share_continuous", "jump_resolved_continuous", "emergence_score_discontinuous",
            "emergence_score_continuous", "transform_check", "transform_max_error", "effective_length", "reason"]
    table = pd.DataFrame(rows, columns=cols)
    table["shots"] = table["shots"].astype("Int64")
    return table


def _verdict(fam, task, shots, d, c, g, lengths, st: AnalysisSettings) -> dict:
    gd = g[g["metric"] == d].set_index("model")
    gc = g[g["metric"] == c].set_index("model")
    common = gd.index.intersection(gc.index)
    gd = gd.loc[common].sort_values("scale", kind="stable")
    gc = gc.loc[gd.index]
    row = dict(family=fam, task=task, shots=shots, discontinuous_metric=d, continuous_metric=c,
               n_models=len(common), min_samples=float(gd["n_samples"].min()) if len(common) else math.nan,
               transform_check="n/a", transform_max_error=math.nan, effective_length=math.nan)
    if len(common) < st.min_models:
        return dict(row, verdict=VERDICT_INSUFFICIENT,
                    reason=f"{len(common)} model(s) with both metrics; at least {st.min_models} needed")
    if np.isfinite(row["min_samples"]) and row["min_samples"] < st.min_samples:
        return dict(row, verdict=VERDICT_INSUFFICIENT,
                    reason=f"a model has only {int(row['min_samples'])} sample(s); at least {st.min_samples} needed")
    x = gd["scale"].to_numpy(dtype=float)
    sd = jump_sharpness(x, gd["value"], gd["ci_low"], gd["ci_high"])
    sc = jump_sharpness(x, _scaled(c, gc), *_scaled_ci(c, gc))
    row.update(jump_share_discontinuous=sd.jump_share, jump_resolved_discontinuous=sd.resolved,
               jump_at_scale=float(x[sd.jump_index]), jump_share_continuous=sc.jump_share,
               jump_resolved_continuous=sc.resolved,
               emergence_score_discontinuous=emergence_score(x, gd["value"]).score,
               emergence_score_continuous=emergence_score(x, gc["value"]).score)
    mean_len = None
    if lengths is not None:
        try:
            mean_len = np.array([lengths.loc[(fam, task, shots, m)] for m in gd.index], dtype=float)
        except KeyError:
            mean_len = None
    check = transform_check(x, gd["value"].to_numpy(float), gd["ci_low"].to_numpy(float),
                            gd["ci_high"].to_numpy(float), per_token_loss(c, gc["value"], mean_len),
                            st.transform_tolerance) if d != "multiple_choice_grade" else None
    if check is not None:
        row.update(transform_check="pass" if check[0] else "fail", transform_max_error=check[1],
                   effective_length=check[2])
    sharp_d = sd.is_sharp(st.sharpness_threshold)
    sharp_c = sc.is_sharp(st.sharpness_threshold)
    share = f"{sd.jump_share:.2f} of the {d} range in one step"
    if not sharp_d:
        why = f"largest step of {d} is {sd.jump_share:.2f} of its range"
        if not sd.resolved:
            why += "; that step is within the intervals"
        elif not sd.with_trend:
            why += "; that step goes against the overall trend"
        elif not sd.change_resolved:
            why += "; the whole change is within the intervals"
        return dict(row, verdict=VERDICT_NONE, reason=why)
    if sharp_c:
        return dict(row, verdict=VERDICT_NOT_EXPLAINED,
                    reason=f"{share}, and {c} jumps too ({sc.jump_share:.2f} of its range in one step)")
    if check is not None and not check[0]:
        return dict(row, verdict=VERDICT_NOT_EXPLAINED,
                    reason=f"{share}; {c} is smooth but exp(-L*CE) from it misses "
                           f"{d} by up to {check[1]:.3f}")
    extra = "" if check is None else f"; exp(-{check[2]:.2f}*CE) from {c} reproduces it"
    return dict(row, verdict=VERDICT_EXPLAINED,
                reason=f"{share} while {c} moves smoothly ({sc.jump_share:.2f} in its largest step){extra}")


def transform_check(scale, observed, ci_low, ci_high, loss, tolerance: float = 0.05):
    """Does the continuous metric, pushed through ``exp(-L * CE)``, reproduce the curve?

    ``loss`` is each model's per-token loss implied by the continuous metric; one effective
    target length ``L`` is fitted (it absorbs greedy decoding and correlated token errors).
    Whether that loss is itself smooth is the sharpness test's job, not this one's.
    Returns (passes, largest absolute error, fitted effective length L) or None when the loss
    is unavailable or not positive.
    """
    if loss is None:
        return None
    loss = np.asarray(loss, dtype=float)
    if not (np.isfinite(loss).all() and (loss > 0).all()):
        return None
    if not (np.all((observed >= 0) & (observed <= 1))):
        return None
    ce = loss
    def sse(L):
        return float(np.sum((np.exp(-L * ce) - observed) ** 2))

    # the loss surface is flat for large L, so locate the basin on a log grid before refining
    grid = np.geomspace(1e-3, 1e3, 121)
    best = int(np.argmin([sse(L) for L in grid]))
    lo_b, hi_b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = minimize_scalar(sse, bounds=(lo_b, hi_b), method="bounded", options={"xatol": 1e-9})
    length = float(res.x)
    pred = np.exp(-length * ce)
    err = np.abs(pred - observed)
    half = np.where(np.isfinite(ci_low) & np.isfinite(ci_high),
                    np.where(pred < observed, observed - ci_low, ci_high - observed), 0.0)
    ok = bool(np.all(err <= half + tolerance))
    return ok, float(err.max()), length


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


def run_analysis(inputs: Inputs, settings: AnalysisSettings = AnalysisSettings()) -> AnalysisResult:
    """Compute curves, emergence scores and verdicts (no files written)."""
    curves, samples, unknown = collect_curves(inputs, settings)
    if curves.empty:
        raise MirageInputError("the inputs hold no metric values to analyse")
    emergence, insufficient = emergence_table(curves)
    verdicts = verdicts_table(curves, samples, settings)
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
                          resolution)


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
        "settings": {
            "bootstrap": settings.bootstrap, "seed": settings.seed, "level": settings.level,
            "sharpness_threshold": settings.sharpness_threshold, "min_models": settings.min_models,
            "min_samples": settings.min_samples, "transform_tolerance": settings.transform_tolerance,
            "metrics": list(settings.metrics) if settings.metrics else None,
            "kind_overrides": dict(settings.kind_overrides), "answer_regex": settings.answer_regex,
        },
        "n_families": int(curves["family"].nunique()),
        "n_models": int(curves[["family", "model"]].drop_duplicates().shape[0]),
        "n_tasks": int(curves["task"].nunique()),
        "n_metrics": int(curves["metric"].nunique()),
        "n_curves": int(curves.groupby(CURVE_ID, dropna=False).ngroups),
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

    Files: ``curves.csv``, ``emergence.csv``, ``verdicts.csv``, ``summary.json``,
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

