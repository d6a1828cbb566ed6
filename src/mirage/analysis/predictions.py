"""The paper's model applied to a family's records: exact match predicted from the smooth
per-token loss of the same outputs, and exact match and edit distance by target length.

A power law ``CE(N) = (N / c) ** alpha`` is fitted to each family's per-token loss
(:func:`mirage.stats.fits.fit_power_law`) and pushed through ``exp(-L * CE)`` with each item's
own target length (``predictions.csv``, ``prediction_fits.csv``); ``lengths.csv`` groups items by
target length, where the theory says exact match falls geometrically and edit distance grows
linearly. Pure and seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import MirageInputError
from ..progress import progress_iter
from ..schema.checks import positive_array, whole_lengths
from ..schema.results import Predictions
from ..schema.settings import AnalysisSettings
from ..schema.tables import LENGTHS, PREDICTION_FITS, PREDICTIONS, set_shots
from ..schema.vocab import PredictionSource, RowKind
from ..stats import PowerLawFit, fit_power_law, wilson_interval, z_value


def _mixture_accuracy(ce: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over a length mixture of ``exp(-L CE)``: ``ce`` (..., S) -> (..., S)."""
    terms = np.exp(-ce[..., None] * lengths)  # lengths (n_lengths,) broadcast over the last axis
    return terms @ weights


def predict_accuracy(
    fit: PowerLawFit, scale: ArrayLike, lengths: ArrayLike, level: float | None = None
) -> pd.DataFrame:
    """Predicted accuracy ``exp(-L CE_fit(N))`` at every (scale, length), with a bootstrap band.

    Columns: scale, length, cross_entropy, p_token, accuracy, accuracy_low, accuracy_high (band:
    quantiles at ``level`` — the fit's level by default — of the accuracy over bootstrap fits).
    """
    level = fit.level if level is None else level
    n = positive_array(scale, "scale").ravel()
    L = whole_lengths(lengths, "lengths").ravel()
    ce = fit.cross_entropy(n)
    boot = fit.boot_cross_entropy(n)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    parts = []
    for length in L:
        lo, hi = np.quantile(np.exp(-length * boot), q, axis=0)
        parts.append(
            pd.DataFrame(
                {
                    "scale": n,
                    "length": int(length),
                    "cross_entropy": ce,
                    "p_token": np.exp(-ce),
                    "accuracy": np.exp(-length * ce),
                    "accuracy_low": lo,
                    "accuracy_high": hi,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- inverse: from records

SAMPLE_KEY_COLUMNS = ["family", "model", "scale", "task", "sample_id", "target_length"]
PREDICTION_SOURCES = PredictionSource.values()
PREDICTION_COLUMNS = list(PREDICTIONS.names)
FIT_COLUMNS = list(PREDICTION_FITS.names)


def _check_samples(samples: Any) -> pd.DataFrame:
    if not isinstance(samples, pd.DataFrame):
        raise MirageInputError("expected the per-sample table of mirage.metrics.compute_sample_metrics", "samples")
    missing = [c for c in SAMPLE_KEY_COLUMNS if c not in samples.columns]
    if missing:
        raise MirageInputError(f"missing column(s) {', '.join(missing)}", "samples")
    if not any(s in samples.columns for s in PREDICTION_SOURCES):
        raise MirageInputError(
            "needs a continuous per-sample metric: target_mean_logprob or token_edit_distance", "samples"
        )
    scale = pd.to_numeric(samples["scale"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise MirageInputError("column 'scale' must be finite and > 0", "samples")
    return samples


def _pick_source(g: pd.DataFrame, source: str) -> str | None:
    if source != "auto":
        return source if source in g.columns and g[source].notna().any() else None
    for name in PREDICTION_SOURCES:
        if name in g.columns and g[name].notna().any():
            return name
    return None


def _per_token_matrix(g: pd.DataFrame, src: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(scales of the models, items × models matrix of per-token loss or error rate, its kind)."""
    length = pd.to_numeric(g["target_length"], errors="coerce")
    if src == "target_mean_logprob":
        vals, kind = -pd.to_numeric(g[src], errors="coerce"), "ce"
    else:  # per-token error rate of the sample; edit distance can exceed the length (insertions)
        vals, kind = (pd.to_numeric(g[src], errors="coerce") / length).clip(upper=1.0), "error"
    frame = pd.DataFrame({"sample_id": g["sample_id"].astype(str), "model": g["model"].astype(str), "v": vals})
    columns, matrix = _items_by_model(frame)
    scales = g.groupby(g["model"].astype(str))["scale"].first().reindex(columns).to_numpy(dtype=float)
    return scales, matrix, kind


def _items_by_model(frame: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
    """(models, items x models matrix) of ``frame.pivot_table(index="sample_id", columns="model",
    values="v", aggfunc="mean")``: the pairs with a value placed by sorted integer codes (items and
    models without any value left out, as the pivot leaves them out); the pivot table itself where
    a key is missing or a pair repeats (a mean of several values)."""
    v = frame["v"].to_numpy(dtype=float)
    has = ~np.isnan(v)
    items, ids = pd.factorize(frame["sample_id"][has], sort=True)
    models, names = pd.factorize(frame["model"][has], sort=True)
    cell = items.astype(np.int64) * max(len(names), 1) + models
    if len(cell) and (items.min() < 0 or models.min() < 0 or np.bincount(cell).max() > 1):
        wide = frame.pivot_table(index="sample_id", columns="model", values="v", aggfunc="mean")
        return wide.columns, wide.to_numpy(dtype=float)
    matrix = np.full((len(ids), len(names)), np.nan)
    matrix[items, models] = v[has]
    return pd.Index(names), matrix


def _group_keys(samples: pd.DataFrame) -> list[str]:
    return ["family", "task"] + (["shots"] if "shots" in samples.columns else [])


def predict_from_sample_metrics(
    samples: pd.DataFrame,
    *,
    source: str = "auto",
    bootstrap: str = "samples",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    extrapolate: Sequence[float] = (),
    n_grid: int = 40,
    progress: bool = False,
) -> Predictions:
    """Predict each model's exact match from a continuous metric of the same outputs.

    ``samples`` is the per-sample table of :func:`mirage.metrics.compute_sample_metrics`
    (family, model, scale, task, sample_id, target_length, [shots], and metric columns). Per
    (family, task[, shots]): each model's per-token loss comes from ``source`` —
    ``target_mean_logprob`` (CE = -mean log p) or ``token_edit_distance`` (per-token error rate
    = distance / length, CE = -log(1 - mean rate)); ``auto`` takes the first present. A power law
    is fitted across models (:func:`fit_power_law`, bootstrap over ``samples`` paired across
    models, or over ``models``), and a model's predicted exact match is the mean over its samples
    of ``exp(-L_i CE_fit(N))`` with each sample's target length L_i; the band holds the
    ``level`` quantiles of that mean over the bootstrap fits. Observed exact match (if the table
    has it) carries a Wilson interval; ``prediction_error`` = predicted - observed, and
    ``consistent`` says whether the observed interval overlaps the predicted band. Groups with
    fewer than two usable models get a fits row with a ``note`` and no predictions.
    Pure: reads nothing, writes nothing; seeded. ``progress`` shows a bar over the groups.
    """
    samples = _check_samples(samples)
    if source != "auto" and source not in PREDICTION_SOURCES:
        raise MirageInputError(
            f"unknown source {source!r}; use auto or one of {', '.join(PREDICTION_SOURCES)}", "source"
        )
    if bootstrap not in ("samples", "models"):
        raise MirageInputError(f"must be 'samples' or 'models', got {bootstrap!r}", "bootstrap")
    extra = positive_array(extrapolate, "extrapolate").ravel() if len(extrapolate) else np.array([])
    keys = _group_keys(samples)
    pred_rows: list[dict[str, Any]] = []
    fit_rows: list[dict[str, Any]] = []
    groups = samples.groupby(keys, sort=True, dropna=False)
    if progress:
        groups = progress_iter(groups, "predicting exact match", total=groups.ngroups, unit="curve")
    for key, g in groups:
        base = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rows, fits = prediction_rows(
            base,
            g,
            source=source,
            bootstrap=bootstrap,
            n_boot=n_boot,
            seed=seed,
            level=level,
            extra=extra,
            n_grid=n_grid,
        )
        pred_rows += rows
        fit_rows += fits
    return prediction_frames(pred_rows, fit_rows, "shots" in samples.columns)


def prediction_rows(
    base: dict[str, Any],
    g: pd.DataFrame,
    *,
    source: str = "auto",
    bootstrap: str = "samples",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    extra: np.ndarray | None = None,
    n_grid: int = 40,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``predictions.csv`` and ``prediction_fits.csv`` rows of one (family, task[, shots]) group
    of per-sample metrics (``base``: its key columns); see :func:`predict_from_sample_metrics`."""
    extra = np.array([]) if extra is None else extra
    base = dict(base)
    base.setdefault("shots", pd.NA)
    pred_rows: list[dict[str, Any]] = []
    fit_rows: list[dict[str, Any]] = []
    src = _pick_source(g, source)
    if src is None:
        fit_rows.append(dict(base, source=source, note=f"no {source if source != 'auto' else 'continuous'} metric"))
        return pred_rows, fit_rows
    scales, matrix, kind = _per_token_matrix(g, src)
    arg = matrix if bootstrap == "samples" else np.nanmean(matrix, axis=0)
    try:
        fit = fit_power_law(
            scales,
            **{"per_token_ce" if kind == "ce" else "per_token_error": arg},
            n_boot=n_boot,
            seed=seed,
            level=level,
        )
    except MirageInputError as exc:
        fit_rows.append(dict(base, source=src, note=str(exc).split(": ", 1)[-1]))
        return pred_rows, fit_rows
    fit_rows.append(dict(base, source=src, **fit.as_row(), note=""))
    lengths_all = pd.to_numeric(g["target_length"], errors="coerce")
    mix_l, mix_w = _length_mixture(lengths_all)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]

    def predicted(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        point = _mixture_accuracy(fit.cross_entropy(n), mix_l, mix_w)
        lo, hi = np.quantile(_mixture_accuracy(fit.boot_cross_entropy(n), mix_l, mix_w), q, axis=0)
        return point, lo, hi

    for model, m in g.groupby(g["model"].astype(str), sort=False):
        n = float(m["scale"].iloc[0])
        ml, mw = _length_mixture(pd.to_numeric(m["target_length"], errors="coerce"))
        point = float(_mixture_accuracy(fit.cross_entropy([n]), ml, mw)[0])
        band = np.quantile(_mixture_accuracy(fit.boot_cross_entropy([n]), ml, mw)[:, 0], q)
        obs = lo = hi = np.nan
        if "exact_match" in m.columns and m["exact_match"].notna().any():
            em = pd.to_numeric(m["exact_match"], errors="coerce").dropna()
            obs = float(em.mean())
            lo, hi = (float(v) for v in wilson_interval(em.sum(), len(em), level))
        pred_rows.append(
            dict(
                base,
                row_kind=RowKind.MODEL.value,
                model=model,
                scale=n,
                n_samples=len(m),
                mean_target_length=float(m["target_length"].mean()),
                observed_exact_match=obs,
                observed_low=lo,
                observed_high=hi,
                predicted_exact_match=point,
                predicted_low=float(band[0]),
                predicted_high=float(band[1]),
                prediction_error=point - obs,
                # the band is for the expected value; the observation has its own interval
                consistent=bool(lo <= band[1] and band[0] <= hi) if np.isfinite(obs) else pd.NA,
                source=src,
            )
        )
    span = np.log10(scales)
    top = max(span.max(), np.log10(extra).max()) if len(extra) else span.max()
    grid = np.geomspace(10 ** (span.min() - 0.1), 10 ** (top + 0.1), n_grid) if n_grid > 0 else np.array([])
    for kind_name, xs in ((RowKind.CURVE.value, grid), (RowKind.EXTRAPOLATED.value, extra)):
        if not len(xs):
            continue
        points, lo_a, hi_a = predicted(xs)
        for n, pt, a, b in zip(xs, points, lo_a, hi_a):
            pred_rows.append(
                dict(
                    base,
                    row_kind=kind_name,
                    model=None,
                    scale=float(n),
                    n_samples=0,
                    mean_target_length=float(lengths_all.mean()),
                    observed_exact_match=np.nan,
                    observed_low=np.nan,
                    observed_high=np.nan,
                    predicted_exact_match=float(pt),
                    predicted_low=float(a),
                    predicted_high=float(b),
                    prediction_error=np.nan,
                    consistent=pd.NA,
                    source=src,
                )
            )
    return pred_rows, fit_rows


def prediction_frames(pred_rows: list[dict[str, Any]], fit_rows: list[dict[str, Any]], has_shots: bool) -> Predictions:
    """The predictions and fits tables from the rows of :func:`prediction_rows`."""
    preds = pd.DataFrame(pred_rows, columns=PREDICTION_COLUMNS)
    fits = pd.DataFrame(fit_rows, columns=FIT_COLUMNS)
    preds["consistent"] = preds["consistent"].astype("boolean")
    if not has_shots:
        preds, fits = preds.drop(columns="shots"), fits.drop(columns="shots")
    else:
        set_shots(preds)
        set_shots(fits)
    return Predictions(predictions=preds, fits=fits)


def _length_mixture(lengths: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(distinct target lengths, their shares) — the mean of exp(-L CE) over samples, grouped by L."""
    counts = lengths.dropna().astype(int).value_counts().sort_index()
    if counts.empty or (counts.index < 1).any():
        raise MirageInputError("target_length must be >= 1 for every sample", "samples")
    return counts.index.to_numpy(dtype=float), (counts / counts.sum()).to_numpy(dtype=float)


# --------------------------------------------------------------------------- target length

LENGTH_COLUMNS = list(LENGTHS.names)


def length_analysis(samples: pd.DataFrame, *, source: str = "auto", level: float = 0.95) -> pd.DataFrame:
    """Observed vs predicted exact match and edit distance by target length, per model.

    One row per (family, task[, shots], model, target length): observed exact match with a Wilson
    interval, mean token edit distance with a normal interval, the model's per-token probability
    ``p_hat`` from ``source`` over all its samples (exp of the mean target log-prob, or 1 - mean
    per-token error rate), the theory's ``p_hat ** L`` and ``L (1 - p_hat)``, and per model the
    least-squares slope of log observed exact match on L (lengths with a non-zero exact match),
    which the theory says is ``log p_hat``.
    """
    samples = _check_samples(samples)
    keys = _group_keys(samples) + ["model"]
    rows: list[dict[str, Any]] = []
    for key, m in samples.groupby(keys, sort=True, dropna=False):
        rows += length_rows(dict(zip(keys, key)), m, source=source, level=level)
    return length_frame(rows, "shots" in samples.columns)


def length_rows(
    base: dict[str, Any], m: pd.DataFrame, *, source: str = "auto", level: float = 0.95
) -> list[dict[str, Any]]:
    """The ``lengths.csv`` rows of one model of one group (``base``: its key columns and model)."""
    z = z_value(level)
    base = dict(base)
    base.setdefault("shots", pd.NA)
    src = _pick_source(m, source)
    p_hat = np.nan
    if src == "target_mean_logprob":
        p_hat = float(np.exp(pd.to_numeric(m[src], errors="coerce").mean()))
    elif src == "token_edit_distance":
        rate = (pd.to_numeric(m[src], errors="coerce") / m["target_length"]).clip(upper=1.0)
        p_hat = float(1.0 - rate.mean())
    group_rows = []
    # the rows of each target length (sorted; no length: left out), in input order, as arrays:
    # means, sums and the standard deviation computed as pandas computes them, bit for bit
    lengths = m["target_length"].to_numpy(dtype=float)
    at = np.flatnonzero(~np.isnan(lengths))
    distinct, which = np.unique(lengths[at], return_inverse=True)
    by_length = at[np.argsort(which, kind="stable")]
    bounds = np.searchsorted(np.sort(which, kind="stable"), np.arange(len(distinct) + 1))
    none = np.array([], dtype=float)
    em_all = _numbers(m, "exact_match")
    ted_all = _numbers(m, "token_edit_distance")
    scales = m["scale"].to_numpy()
    for k, length in enumerate(distinct):
        rows = by_length[bounds[k] : bounds[k + 1]]
        em = em_all[rows] if em_all is not None else none
        em = em[~np.isnan(em)]
        obs = float(np.sum(em) / len(em)) if len(em) else np.nan
        lo, hi = (float(v) for v in wilson_interval(np.sum(em), len(em), level)) if len(em) else (np.nan, np.nan)
        ted = ted_all[rows] if ted_all is not None else none
        ted = ted[~np.isnan(ted)]
        t_mean = float(np.sum(ted) / len(ted)) if len(ted) else np.nan
        t_half = z * _sample_std(ted) / math.sqrt(len(ted)) if len(ted) > 1 else np.nan
        group_rows.append(
            dict(
                base,
                scale=float(scales[rows[0]]),
                length=int(length),
                n_samples=len(rows),
                observed_exact_match=obs,
                exact_match_low=lo,
                exact_match_high=hi,
                observed_token_edit_distance=t_mean,
                token_edit_distance_low=t_mean - t_half,
                token_edit_distance_high=t_mean + t_half,
                p_token_hat=p_hat,
                predicted_exact_match=p_hat ** int(length) if np.isfinite(p_hat) else np.nan,
                predicted_token_edit_distance=int(length) * (1 - p_hat),
                source=src,
            )
        )
    ls = np.array([r["length"] for r in group_rows], dtype=float)
    acc = np.array([r["observed_exact_match"] for r in group_rows], dtype=float)
    ok = np.isfinite(acc) & (acc > 0)
    slope = float(np.polyfit(ls[ok], np.log(acc[ok]), 1)[0]) if len(np.unique(ls[ok])) >= 2 else np.nan
    log_p = math.log(p_hat) if np.isfinite(p_hat) and p_hat > 0 else np.nan
    return [dict(r, log_accuracy_slope=slope, log_p_token_hat=log_p) for r in group_rows]


def _numbers(m: pd.DataFrame, column: str) -> np.ndarray | None:
    """A column as floats (what is not a number: NaN), None where absent."""
    if column not in m:
        return None
    return np.asarray(pd.to_numeric(m[column], errors="coerce"), dtype=float)


def _sample_std(v: np.ndarray) -> float:
    """``Series.std(ddof=1)`` of values without NaN, computed as pandas computes it (two passes)."""
    n = float(len(v))
    avg = v.sum(dtype=np.float64) / n
    return float(np.sqrt(((avg - v) ** 2).sum(dtype=np.float64) / (n - 1)))


def length_frame(rows: list[dict[str, Any]], has_shots: bool) -> pd.DataFrame:
    """The lengths table from the rows of :func:`length_rows`."""
    out = pd.DataFrame(rows, columns=LENGTH_COLUMNS)
    return out if has_shots else out.drop(columns="shots")


def predict_exact_match(
    samples: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The paper's model applied to the records: (predictions, fits, by-length table).

    Fits a power law to each family's per-token loss (from the continuous metric of the same
    outputs) and predicts every model's exact match, with bootstrap bands; and groups samples
    by target length.
    """
    s = samples.copy()
    if s["shots"].isna().all():
        s = s.drop(columns="shots")
    s = s[s["exact_match"].notna()]
    pred = predict_from_sample_metrics(s, n_boot=max(settings.bootstrap, 100), seed=settings.seed, level=settings.level)
    return pred.predictions, pred.fits, length_analysis(s, level=settings.level)
