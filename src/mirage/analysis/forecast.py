"""Forecast emergence before it happens: the smooth per-token law, extrapolated and pushed through
the metric's transform, with a band and back-tests (``mirage forecast``; pure: no files, no
figures — :func:`mirage.io.outputs.write_forecast` writes, :mod:`mirage.report.forecast` draws).

The paper's strongest practical consequence: if a "sudden" ability is the nonlinear transform of a
smooth per-token loss, the loss of smaller models predicts when the ability will appear. Per
(family, task[, shots]) with a discontinuous metric and a continuous metric of the same outputs:

1. **The law**: the per-token loss of every model (the verdicts' loss scale, :mod:`mirage.verdicts`)
   is fitted as ``loss = E + exp(a + alpha log N)`` (:func:`mirage.evidence.power_law_break_test`,
   the same fit the verdicts use) and extrapolated to the requested scales.
2. **The transform**: exact match is ``mean_s exp(kappa * r(N) * log p_s)`` over the items ``s`` of
   the largest model the law was fitted on (each keeps its own target length and difficulty;
   ``r(N)`` = predicted / observed loss), with the decoding factor ``kappa`` in (0, 1] fitted on the
   observed models as the verdicts' transform check fits it (1 when they are all at zero).
   Multiple-choice grade uses the paper's model of options (the correct option's tokens have
   probability ``p``, the wrong ones share the rest): an item is right when its per-token option
   margin ``logit(p) + log(K - 1)`` is positive, smoothed by one fitted sharpness ``beta``.
   Score tables without items use ``exp(-L loss)`` with one fitted effective length.
3. **The band**: a bootstrap over items (paired across models) and over models (the law refitted on
   each replicate), at ``band`` (default 90 %); quantiles of the prediction at each scale.
4. **Crossings**: the scale at which the predicted metric reaches ``level`` (default 0.5), with the
   band's scales; and the first scale at which this test set (its number of items) would show the
   model above its floor with 80 % power (:func:`mirage.stats.samples_needed`).
5. **Back-tests**: the K largest models (or every model above a scale) are held out, forecast from
   the rest, and compared with what was observed: per model, whether the band covered the
   observed value (its Wilson interval overlaps the band), and the ratio of the predicted crossing
   scale to the crossing observed on the full curve.

A forecast is **declined** when the models it would rest on carry no usable signal (fewer than
three models with a usable loss, or a loss that does not fall with scale), and **flagged
unreliable** when the verdicts' tests find the loss breaking, or the outputs lagging the model's
own probabilities, among those models: a real jump or a loss threshold cannot be forecast from a
smooth law, and the back-test then shows the miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..errors import MirageInputError
from ..metrics import canonical_metric_name, loss_rank, per_token_loss_of
from ..progress import progress_iter
from ..schema.results import ForecastResult, Inputs
from ..schema.settings import AnalysisSettings, ForecastSettings
from ..schema.tables import BACKTESTS, FORECAST, FORECAST_CROSSINGS, FORECAST_FITS, set_shots
from ..schema.vocab import CONTINUOUS_KINDS, CrossingKind, ForecastRow, ForecastStatus
from ..stats.evidence import BreakTest, exact_match_transform_test, output_lag_test, power_law_break_test
from ..stats.intervals import wilson_interval
from ..stats.power import samples_needed
from .curves import collect_curves

STATUS_OK, STATUS_UNRELIABLE, STATUS_DECLINED = (
    ForecastStatus.FORECAST.value,
    ForecastStatus.UNRELIABLE.value,
    ForecastStatus.DECLINED.value,
)
Law = tuple[float, float, float]  # (alpha, intercept, irreducible loss E)
Predictor = Callable[..., np.ndarray]


@dataclass
class _Table:
    """A score-table group: per model, its loss (and variance), the metric's value and items."""

    loss: np.ndarray
    loss_var: np.ndarray
    value: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class _Transform:
    """The transform's fitted factor: ``kappa`` (exact match), ``link`` (multiple choice:
    offset, sharpness, floor) or ``length`` (score tables), and its name in words."""

    name: str
    value: float
    kappa: float = 1.0
    link: tuple[float, float, float] = (0.0, 1.0, 0.0)
    length: float = 1.0


# ----------------------------------------------------------------------------- one group


@dataclass
class _Group:
    """The item-level data of one (family, task, shots) group, models sorted by scale."""

    family: str
    task: str
    shots: object
    metric: str  # the discontinuous metric forecast
    models: list[str]
    scales: np.ndarray
    correct: list[np.ndarray]  # per model, per item: 0/1 (NaN dropped)
    loss_items: list[np.ndarray]  # per model, per item: the per-token loss of the item
    weight_items: list[np.ndarray]  # per model, per item: tokens (generation) or 1 (multiple choice)
    lengths: list[np.ndarray]  # per model, per item: target length (or correct option length)
    choices: list[np.ndarray]  # per model, per item: number of options (multiple choice)
    sampled_acc: list[np.ndarray] | None = None  # generation: token accuracy of the outputs
    expected_acc: list[np.ndarray] | None = None  # generation: mean target-token probability
    floor: float = 0.0
    loss_metric: str = ""
    table: _Table | None = None  # a score table: no items

    @property
    def scores_only(self) -> bool:
        return self.table is not None


def _model_loss(g: _Group, idx: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-model loss (token-weighted) and its variance, optionally on resampled items."""
    loss = np.full(len(g.models), np.nan)
    var = np.full(len(g.models), np.nan)
    for i in range(len(g.models)):
        li, wi = g.loss_items[i], g.weight_items[i]
        if idx is not None:
            li, wi = li[idx[i]], wi[idx[i]]
        tot = float(wi.sum())
        if tot <= 0 or len(li) == 0:
            continue
        nll = li * wi
        loss[i] = float(nll.sum()) / tot
        var[i] = float(np.sum((nll - loss[i] * wi) ** 2)) / tot**2
    return loss, var


def _law(
    scales: np.ndarray, loss: np.ndarray, var: np.ndarray, tolerance: float
) -> tuple[float, float, float, float, float, BreakTest]:
    """(alpha, intercept, E, alpha_se, break p-value, the fit) of the smooth law through these models."""
    bt = power_law_break_test(scales, loss, var, tolerance=tolerance, min_models=3)
    E = float(bt.irreducible[0]) if bt.irreducible is not None else 0.0
    return float(bt.alpha[0]), float(bt.intercept[0]), E, float(bt.alpha_se[0]), float(bt.break_p[0]), bt


def _law_loss(N: np.ndarray, alpha: float, intercept: float, E: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return E + np.exp(intercept + alpha * np.log(np.asarray(N, dtype=float)))


def _option_margin(loss_items: np.ndarray, lengths: np.ndarray, choices: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per scale and item, the summed option margin the paper's model gives a per-token option loss
    scaled by ``r``: ``L (logit(p) + log(K - 1))`` with ``p = exp(-r loss)`` (0 at chance)."""
    ce = np.clip(np.outer(r, loss_items), 1e-12, None)  # scales x items
    logit = -ce - np.log(-np.expm1(-ce))
    return lengths[None, :] * (logit + np.log(np.maximum(choices[None, :] - 1, 1)))


def _mc_grade(
    loss_items: np.ndarray, lengths: np.ndarray, choices: np.ndarray, r: np.ndarray, link: tuple[float, float, float]
) -> np.ndarray:
    """Grade under the option link ``floor + (1 - floor) sigmoid(gamma + beta * margin)``."""
    gamma, beta, floor0 = link
    z = gamma + beta * _option_margin(loss_items, lengths, choices, r)
    share = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
    chance = (1.0 / np.maximum(choices, 2))[None, :] if floor0 else np.zeros((1, len(choices)))
    return np.asarray(np.mean(chance + (1 - chance) * share, axis=1))


def _fit_mc_link(
    g: _Group, fit_idx: np.ndarray, fitted_loss: np.ndarray, observed_loss: np.ndarray
) -> tuple[float, float, float]:
    """(gamma, beta, floor) of the option link, by maximum likelihood on the items of the fit models.

    Each item's margin comes from its own per-token option loss, rescaled to the smooth law;
    ``floor`` is 0 or chance (1/K), whichever fits better: real families sit at chance before they
    discriminate, the paper's model goes below it.
    """
    z, y, chance = [], [], []
    for i in fit_idx:
        r = np.array([fitted_loss[i] / observed_loss[i]])
        z.append(_option_margin(g.loss_items[i], g.lengths[i], g.choices[i], r)[0])
        y.append(g.correct[i])
        chance.append(1.0 / np.maximum(g.choices[i], 2))
    zz, yy, cc = np.concatenate(z), np.concatenate(y), np.concatenate(chance)
    best: tuple[float, float, float, float] | None = None
    for floor0 in (0.0, 1.0):
        base = cc if floor0 else np.zeros_like(cc)

        def nll(theta: np.ndarray, base: np.ndarray = base) -> float:
            share = 0.5 * (1.0 + np.tanh(0.5 * (theta[0] + np.exp(theta[1]) * zz)))
            p = np.clip(base + (1 - base) * share, 1e-12, 1 - 1e-12)
            return float(-np.sum(yy * np.log(p) + (1 - yy) * np.log1p(-p)))

        res = minimize(
            nll, x0=np.array([0.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000}
        )
        if best is None or res.fun < best[0]:
            best = (float(res.fun), float(res.x[0]), float(np.exp(res.x[1])), floor0)
    assert best is not None
    return best[1], best[2], best[3]


def _predictor(g: _Group, fit_idx: np.ndarray, loss: np.ndarray, factor: _Transform) -> Predictor:
    """``predict(N, law, items=None, ref_loss=None)``: the discontinuous metric at scales ``N``.

    ``law`` is ``(alpha, intercept, E)``. Exact match and multiple-choice grade are computed from
    the items of the largest fit model (``items`` resamples them), each item's loss scaled by
    ``law(N) / ref_loss``, where ``ref_loss`` is that model's loss on those items.
    """
    ref = int(fit_idx[-1])
    if g.scores_only:
        L_eff = factor.length

        def table(
            N: np.ndarray, law: Law, items: np.ndarray | None = None, ref_loss: float | None = None
        ) -> np.ndarray:
            return np.exp(-L_eff * _law_loss(N, *law))

        return table
    if g.metric == "multiple_choice_grade":
        link = factor.link

        def mc(N: np.ndarray, law: Law, items: np.ndarray | None = None, ref_loss: float | None = None) -> np.ndarray:
            sel = np.arange(len(g.loss_items[ref])) if items is None else items
            r = _law_loss(N, *law) / (loss[ref] if ref_loss is None else ref_loss)
            return _mc_grade(g.loss_items[ref][sel], g.lengths[ref][sel], g.choices[ref][sel], r, link)

        return mc
    kappa = factor.kappa
    tlp = -g.loss_items[ref] * g.weight_items[ref]  # log-probability of each item's whole target

    def em(N: np.ndarray, law: Law, items: np.ndarray | None = None, ref_loss: float | None = None) -> np.ndarray:
        sel = tlp if items is None else tlp[items]
        r = _law_loss(N, *law) / (loss[ref] if ref_loss is None else ref_loss)
        return np.asarray(np.mean(np.exp(kappa * np.outer(r, sel)), axis=1))

    return em


def _fit_transform(g: _Group, fit_idx: np.ndarray, loss: np.ndarray, bt: BreakTest) -> _Transform:
    """The transform's one fitted factor on the fit models."""
    fitted = np.exp(bt.fitted[0])
    if g.table is not None:
        y = g.table.value[fit_idx]
        n = g.table.n[fit_idx]
        best = (math.inf, 1.0)
        for L in np.geomspace(0.05, 50, 200):
            pred = np.exp(-L * fitted[fit_idx])
            var = np.where(np.isfinite(n) & (n > 0), np.maximum(pred * (1 - pred), 1e-4) / np.where(n > 0, n, 1), 1e-4)
            sse = float(np.sum((y - pred) ** 2 / var))
            if sse < best[0]:
                best = (sse, float(L))
        return _Transform("effective length", best[1], length=best[1])
    if g.metric == "multiple_choice_grade":
        gamma, beta, floor0 = _fit_mc_link(g, fit_idx, fitted, loss)
        name = f"option link (sharpness beta; offset {gamma:.3g}; floor {'chance' if floor0 else '0'})"
        return _Transform(name, beta, link=(gamma, beta, floor0))
    correct = [g.correct[i] for i in fit_idx]
    tlp = [-g.loss_items[i] * g.weight_items[i] for i in fit_idx]
    if all(float(np.mean(c)) == 0.0 for c in correct):
        return _Transform("decoding factor (1: every model used is at zero)", 1.0, kappa=1.0)
    tr = exact_match_transform_test(correct, tlp, bt.fitted[0][fit_idx], bt.fitted_var[0][fit_idx], loss[fit_idx])
    return _Transform("decoding factor", float(tr.factor), kappa=float(tr.factor))


def forecast_group(
    g: _Group, settings: ForecastSettings, fit_mask: np.ndarray, grid: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """Fit on ``fit_mask`` models, predict at ``grid`` with a band. Returns a dict of arrays/notes."""
    fit_idx = np.flatnonzero(fit_mask)
    out: dict[str, Any] = {"status": STATUS_DECLINED, "reason": "", "fit_idx": fit_idx}
    if g.table is not None:
        loss, var = g.table.loss.copy(), g.table.loss_var.copy()
    else:
        loss, var = _model_loss(g)
    usable = fit_idx[np.isfinite(loss[fit_idx]) & (loss[fit_idx] > 0)]
    if len(usable) < 3:
        out["reason"] = f"{len(usable)} model(s) with a usable per-token loss among those used; at least 3 needed"
        return out
    masked_loss = np.where(np.isin(np.arange(len(loss)), usable), loss, np.nan)
    alpha, intercept, E, alpha_se, break_p, bt = _law(g.scales, masked_loss, var, settings.loss_tolerance)
    out.update(alpha=alpha, alpha_se=alpha_se, irreducible=E, break_p=break_p)
    if not (np.isfinite(alpha) and alpha + 2 * alpha_se < 0):
        out["reason"] = (
            f"the per-token loss does not fall with scale among the models used (alpha "
            f"{alpha:.3g} ± {alpha_se:.2g}): the smaller models carry no usable signal"
        )
        return out
    lag_p = math.nan
    if g.sampled_acc is not None and g.expected_acc is not None:
        lag_p = output_lag_test([g.sampled_acc[i] for i in usable], [g.expected_acc[i] for i in usable]).p_value
    out["lag_p"] = lag_p
    factor = _fit_transform(g, usable, masked_loss, bt)
    out["factor"] = factor
    predict = _predictor(g, usable, masked_loss, factor)
    law: Law = (alpha, intercept, E)
    point = predict(grid, law)
    # bootstrap over items (paired across models) and over the models the law rests on
    B = settings.bootstrap
    boots = np.full((B, len(grid)), np.nan)
    ref = int(usable[-1])
    n_items = min(len(a) for a in g.loss_items) if not g.scores_only else 0
    for b in range(B):
        pick = rng.choice(usable, size=len(usable), replace=True)
        if len(np.unique(pick)) < 3:
            pick = usable
        items = None
        if g.table is not None:
            sd = np.sqrt(np.nan_to_num(g.table.loss_var))
            lb = g.table.loss + rng.standard_normal(len(loss)) * sd
        else:
            idx = [rng.integers(0, len(a), size=len(a)) for a in g.loss_items]
            lb, _ = _model_loss(g, idx)
            items = idx[ref]
        order = np.argsort(g.scales[pick], kind="stable")
        pick = pick[order]
        a_b, i_b, e_b, _, _, _ = _law(g.scales[pick], lb[pick], var[pick], settings.loss_tolerance)
        if np.isfinite(a_b):
            boots[b] = predict(grid, (a_b, i_b, e_b), items=items, ref_loss=float(lb[ref]))
    q = [(1 - settings.band) / 2, 1 - (1 - settings.band) / 2]
    lo, hi = np.nanquantile(boots, q, axis=0)
    status = STATUS_OK
    reasons: list[str] = []
    if np.isfinite(break_p) and break_p < settings.test_level:
        status = STATUS_UNRELIABLE
        reasons.append(
            f"the per-token loss breaks among the models used (p = {break_p:.2g}): a real jump cannot be "
            "forecast from a smooth law"
        )
    if np.isfinite(lag_p) and lag_p < settings.test_level:
        status = STATUS_UNRELIABLE
        reasons.append(
            f"the outputs lag the model's own probabilities among the models used (p = {lag_p:.2g}): a "
            "loss threshold, which a smooth law cannot forecast"
        )
    out.update(
        status=status,
        reason="; ".join(reasons),
        point=point,
        low=lo,
        high=hi,
        boots=boots,
        grid=grid,
        n_boot=int(np.isfinite(boots[:, 0]).sum()),
        n_items=n_items,
        predict=lambda N, _p=predict, _law=law: _p(np.asarray(N, dtype=float), _law),
    )
    return out


def _crossing(grid: np.ndarray, values: np.ndarray, level: float) -> float:
    """The first scale of the grid at which ``values`` reaches ``level`` (log-interpolated), NaN if never."""
    above = np.flatnonzero(values >= level)
    if len(above) == 0:
        return math.nan
    j = int(above[0])
    if j == 0:
        return float(grid[0])
    y0, y1 = values[j - 1], values[j]
    t = (level - y0) / (y1 - y0) if y1 != y0 else 0.0
    return float(np.exp(np.log(grid[j - 1]) + t * (np.log(grid[j]) - np.log(grid[j - 1]))))


def _observed_crossing(scales: np.ndarray, observed: np.ndarray, level: float) -> float:
    return _crossing(scales, observed, level)


# ----------------------------------------------------------------------------- inputs -> groups


def _groups_from_samples(samples: pd.DataFrame) -> list[_Group]:
    """Item-level groups from the per-sample metrics of :func:`mirage.metrics.compute_sample_metrics`."""
    out = []
    s = samples.copy()
    if "shots" not in s.columns:
        s["shots"] = pd.NA
    s["shots"] = s["shots"].astype("Int64")
    for (fam, task, shots), g in s.groupby(["family", "task", "shots"], sort=True, dropna=False):
        order = g[["model", "scale"]].drop_duplicates().sort_values(["scale", "model"], kind="stable")
        models = order["model"].astype(str).tolist()
        by = {m: d for m, d in g.groupby(g["model"].astype(str), sort=False)}
        present = {c for c in g.columns if g[c].notna().any()}
        if {"exact_match", "target_logprob"} <= present:
            correct, li, wi, ln, sa, ea = [], [], [], [], [], []
            for m in models:
                d = by[m]
                ok = (d["exact_match"].notna() & d["target_logprob"].notna() & (d["target_length"] > 0)).to_numpy()
                L = d["target_length"].to_numpy(float)[ok]
                correct.append(d["exact_match"].to_numpy(float)[ok])
                li.append(-d["target_logprob"].to_numpy(float)[ok] / L)
                wi.append(L)
                ln.append(L)
                if {"token_edit_distance", "target_mean_token_prob"} <= present:
                    ok2 = (
                        ok
                        & d["token_edit_distance"].notna().to_numpy()
                        & d["target_mean_token_prob"].notna().to_numpy()
                    )
                    L2 = d["target_length"].to_numpy(float)[ok2]
                    sa.append(1.0 - np.minimum(d["token_edit_distance"].to_numpy(float)[ok2], L2) / L2)
                    ea.append(d["target_mean_token_prob"].to_numpy(float)[ok2])
            out.append(
                _Group(
                    str(fam),
                    str(task),
                    shots,
                    "exact_match",
                    models,
                    order["scale"].to_numpy(float),
                    correct,
                    li,
                    wi,
                    ln,
                    [np.array([])] * len(models),
                    sampled_acc=sa if len(sa) == len(models) else None,
                    expected_acc=ea if len(ea) == len(models) else None,
                    floor=0.0,
                    loss_metric="target_mean_logprob",
                )
            )
        if {"multiple_choice_grade", "choice_token_loss"} <= present:
            correct, li, wi, ln, ch = [], [], [], [], []
            for m in models:
                d = by[m]
                ok = (d["multiple_choice_grade"].notna() & d["choice_token_loss"].notna()).to_numpy()
                L = (
                    d["correct_choice_length"].to_numpy(float)[ok]
                    if "correct_choice_length" in d.columns
                    else np.ones(int(ok.sum()))
                )
                L = np.where(np.isfinite(L) & (L > 0), L, 1.0)
                correct.append(d["multiple_choice_grade"].to_numpy(float)[ok])
                li.append(d["choice_token_loss"].to_numpy(float)[ok])
                wi.append(np.ones(int(ok.sum())))
                ln.append(L)
                ch.append(
                    d["n_choices"].to_numpy(float)[ok] if "n_choices" in d.columns else np.full(int(ok.sum()), 2.0)
                )
            floor = float(np.nanmean(1.0 / np.concatenate(ch))) if sum(map(len, ch)) else 0.0
            out.append(
                _Group(
                    str(fam),
                    str(task),
                    shots,
                    "multiple_choice_grade",
                    models,
                    order["scale"].to_numpy(float),
                    correct,
                    li,
                    wi,
                    ln,
                    ch,
                    floor=floor,
                    loss_metric="choice_token_loss",
                )
            )
    return out


EXACT_MATCH_LIKE = ("exact_match", "exact_str_match", "em", "acc")


def _groups_from_scores(curves: pd.DataFrame) -> list[_Group]:
    """Groups from score-table curves: an exact-match-like metric with a loss-scale partner."""
    out = []
    c = curves[curves.get("ci_method", pd.Series("none", index=curves.index)) != "wilson"] if len(curves) else curves
    for (fam, task, shots), g in c.groupby(["family", "task", "shots"], sort=True, dropna=False):
        disc = [
            m
            for m in g["metric"].unique()
            if canonical_metric_name(m) in EXACT_MATCH_LIKE
            and (g.loc[g.metric == m, "metric_kind"] == "discontinuous").all()
        ]
        cont = sorted(
            {m for m in g.loc[g["metric_kind"].isin(CONTINUOUS_KINDS), "metric"] if loss_rank(m) is not None},
            key=lambda m: (loss_rank(m), str(m)),
        )
        if not disc or not cont:
            continue
        d = g[g["metric"] == disc[0]].sort_values(["scale", "model"], kind="stable")
        models = d["model"].astype(str).tolist()
        lc = g[g["metric"] == cont[0]].assign(model=lambda f: f["model"].astype(str)).set_index("model").reindex(models)
        got = per_token_loss_of(
            cont[0], lc["value"].to_numpy(float), lc["stderr"].to_numpy(float) if "stderr" in lc.columns else None
        )
        assert got is not None  # cont holds only metrics with a loss scale
        loss, var = got
        n = d["n_samples"].to_numpy(float) if "n_samples" in d.columns else np.full(len(d), np.nan)
        out.append(
            _Group(
                str(fam),
                str(task),
                shots,
                str(disc[0]),
                models,
                d["scale"].to_numpy(float),
                [np.array([])] * len(models),
                [np.array([])] * len(models),
                [np.array([])] * len(models),
                [np.array([])] * len(models),
                [np.array([])] * len(models),
                floor=0.0,
                loss_metric=str(cont[0]),
                table=_Table(loss, var, d["value"].to_numpy(float), n),
            )
        )
    return out


# ----------------------------------------------------------------------------- the command


def _observed(g: _Group, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(observed value, Wilson low, Wilson high, n) per model."""
    if g.table is not None:
        n, v = g.table.n, g.table.value
        lo, hi = wilson_interval(v * np.nan_to_num(n), np.where(np.isfinite(n), n, np.nan), confidence)
        return v, np.where(np.isfinite(n), lo, np.nan), np.where(np.isfinite(n), hi, np.nan), n
    n = np.array([len(c) for c in g.correct], dtype=float)
    v = np.array([float(np.mean(c)) if len(c) else np.nan for c in g.correct])
    lo, hi = wilson_interval(v * n, n, confidence)
    return v, lo, hi, n


def _held_out_mask(g: _Group, settings: ForecastSettings) -> np.ndarray:
    k = len(g.models)
    if settings.backtest_above is not None:
        return g.scales > settings.backtest_above
    held = np.zeros(k, dtype=bool)
    if settings.backtest:
        held[max(k - settings.backtest, 0) :] = True
    return held


def run_forecast(
    inputs: Inputs, settings: ForecastSettings = ForecastSettings(), *, progress: bool = False
) -> ForecastResult:
    """Forecast every (family, task[, shots]) of the inputs (pure: writes nothing; seeded).

    Records give item-level forecasts; score tables need an exact-match-like metric and a
    continuous metric with a per-token loss scale (perplexity, log-likelihood, ...). ``progress``
    reports each forecast done on stderr (:mod:`mirage.progress`).
    """
    curves, samples, _unknown = collect_curves(inputs, AnalysisSettings(bootstrap=0, seed=settings.seed))
    return forecast_from_curves(curves, samples, settings, progress=progress)


def _unobserved_row(
    base: dict[str, Any], kind: ForecastRow, scale: float, point: float, low: float, high: float
) -> dict[str, Any]:
    """A forecast row at a scale with no observed model (a requested scale or a point of the drawn curve)."""
    return dict(
        base,
        row_kind=kind.value,
        model=None,
        scale=float(scale),
        n_samples=np.nan,
        observed=np.nan,
        observed_low=np.nan,
        observed_high=np.nan,
        predicted=float(point),
        predicted_low=float(low),
        predicted_high=float(high),
        covered=pd.NA,
    )


def forecast_from_curves(
    curves: pd.DataFrame,
    samples: pd.DataFrame | None,
    settings: ForecastSettings = ForecastSettings(),
    *,
    progress: bool = False,
) -> ForecastResult:
    """:func:`run_forecast` on curves and per-sample metrics already computed
    (:func:`mirage.analysis.curves.collect_curves`)."""
    groups = _groups_from_samples(samples) if samples is not None and len(samples) else []
    groups += _groups_from_scores(curves)
    if not groups:
        raise MirageInputError(
            "nothing to forecast: no family and task has exact match or multiple-choice grade "
            "together with a continuous metric of the same outputs on a per-token loss scale"
        )
    rng = np.random.default_rng(settings.seed)
    f_rows: list[dict[str, Any]] = []
    c_rows: list[dict[str, Any]] = []
    fit_rows: list[dict[str, Any]] = []
    b_rows: list[dict[str, Any]] = []
    for g in progress_iter(groups, "forecasts", unit="forecast", enabled=progress):  # each a bootstrap
        base = dict(family=g.family, task=g.task, shots=g.shots, metric=g.metric)
        obs, olo, ohi, n = _observed(g, settings.confidence)
        top = max([float(g.scales.max())] + list(settings.to))
        grid = np.geomspace(float(g.scales.min()) / 1.5, top * 3.0, settings.n_grid)
        held = _held_out_mask(g, settings)
        fit_mask = ~held
        res = forecast_group(g, settings, fit_mask, grid, rng)
        _fit_row(fit_rows, base, g, res, fit_mask)
        for i, m in enumerate(g.models):
            f_rows.append(
                dict(
                    base,
                    row_kind=ForecastRow.HELD_OUT.value if held[i] else ForecastRow.OBSERVED.value,
                    model=m,
                    scale=float(g.scales[i]),
                    n_samples=float(n[i]),
                    observed=obs[i],
                    observed_low=olo[i],
                    observed_high=ohi[i],
                    predicted=np.nan,
                    predicted_low=np.nan,
                    predicted_high=np.nan,
                    covered=pd.NA,
                )
            )
        if res["status"] == STATUS_DECLINED:
            c_rows.append(
                dict(
                    base,
                    crossing=CrossingKind.LEVEL.value,
                    level=settings.level,
                    scale=np.nan,
                    scale_low=np.nan,
                    scale_high=np.nan,
                    n_items=np.nan,
                    note=f"declined: {res['reason']}",
                )
            )
            if held.any():
                _backtest_rows(b_rows, base, g, res, held, obs, olo, ohi, settings, grid)
            continue
        predict = res["predict"]
        at_models = predict(g.scales)
        boots_models = _boot_at(res, g.scales)
        for i, row in enumerate(r for r in f_rows[-len(g.models) :]):
            row["predicted"] = float(at_models[i])
            row["predicted_low"], row["predicted_high"] = (float(v) for v in boots_models[:, i])
            if np.isfinite(row["observed_low"]):
                row["covered"] = bool(
                    row["observed_low"] <= row["predicted_high"] and row["predicted_low"] <= row["observed_high"]
                )
        for N in settings.to:
            bl, bh = _boot_at(res, np.array([N]))[:, 0]
            point = float(predict(np.array([N]))[0])
            f_rows.append(_unobserved_row(base, ForecastRow.EXTRAPOLATED, N, point, bl, bh))
        for N, p, lo, hi in zip(grid, res["point"], res["low"], res["high"], strict=True):
            f_rows.append(_unobserved_row(base, ForecastRow.CURVE, N, p, lo, hi))
        c_rows += _crossing_rows(base, g, res, grid, settings, n)
        if held.any():
            _backtest_rows(b_rows, base, g, res, held, obs, olo, ohi, settings, grid)
    forecast = pd.DataFrame(f_rows, columns=list(FORECAST.names))
    crossings = pd.DataFrame(c_rows, columns=list(FORECAST_CROSSINGS.names))
    fits = pd.DataFrame(fit_rows, columns=list(FORECAST_FITS.names))
    backtests = pd.DataFrame(b_rows, columns=list(BACKTESTS.names))
    for t in (forecast, crossings, fits, backtests):
        set_shots(t)
    forecast["covered"] = forecast["covered"].astype("boolean")
    backtests["covered"] = backtests["covered"].astype("boolean")
    summary = _summary(fits, backtests, settings)
    return ForecastResult(forecast, crossings, fits, backtests, summary)


def _boot_at(res: dict[str, Any], scales: np.ndarray) -> np.ndarray:
    """(2, len(scales)) band at any scales, interpolated on log scale from the grid's band."""
    x = np.log(np.asarray(scales, dtype=float))
    return np.vstack([np.interp(x, np.log(res["grid"]), res["low"]), np.interp(x, np.log(res["grid"]), res["high"])])


def _crossing_rows(
    base: dict[str, Any], g: _Group, res: dict[str, Any], grid: np.ndarray, settings: ForecastSettings, n: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    boots = res["boots"]
    cross_b = np.array([_crossing(grid, b, settings.level) for b in boots if np.isfinite(b).all()])
    q = [(1 - settings.band) / 2, 1 - (1 - settings.band) / 2]
    point = _crossing(grid, res["point"], settings.level)
    finite = cross_b[np.isfinite(cross_b)]
    note = "" if np.isfinite(point) else f"the forecast does not reach {settings.level:g} below scale {grid[-1]:.3g}"
    lo_hi = np.quantile(finite, q) if len(finite) >= max(10, len(cross_b) // 2) else (np.nan, np.nan)
    if len(finite) < len(cross_b):
        note = (note + "; " if note else "") + (
            f"{len(cross_b) - len(finite)} of {len(cross_b)} bootstrap replicates do not reach it within the grid"
        )
    items = float(np.nanmedian(n)) if np.isfinite(n).any() else math.nan
    rows.append(
        dict(
            base,
            crossing=CrossingKind.LEVEL.value,
            level=settings.level,
            scale=point,
            scale_low=float(lo_hi[0]),
            scale_high=float(lo_hi[1]),
            n_items=items,
            note=note,
        )
    )
    # first scale at which this test set would show the model above its floor (80 % power)
    if np.isfinite(items) and items > 0:
        need = samples_needed(np.clip(res["point"], 0, 1), g.floor)
        above = np.flatnonzero(need <= items)
        scale = float(grid[above[0]]) if len(above) else math.nan
        rows.append(
            dict(
                base,
                crossing=CrossingKind.ABOVE_FLOOR.value,
                level=g.floor,
                scale=scale,
                scale_low=np.nan,
                scale_high=np.nan,
                n_items=items,
                note="" if len(above) else f"not within the grid (to {grid[-1]:.3g})",
            )
        )
    return rows


def _fit_row(
    rows: list[dict[str, Any]], base: dict[str, Any], g: _Group, res: dict[str, Any], fit_mask: np.ndarray
) -> None:
    factor: _Transform | None = res.get("factor")
    rows.append(
        dict(
            base,
            loss_metric=g.loss_metric,
            status=res["status"],
            reason=res["reason"],
            n_models=int(len(res["fit_idx"])),
            scale_max_fit=float(g.scales[fit_mask].max()) if fit_mask.any() else math.nan,
            alpha=res.get("alpha", math.nan),
            alpha_se=res.get("alpha_se", math.nan),
            irreducible=res.get("irreducible", math.nan),
            transform=factor.name if factor else "",
            transform_factor=factor.value if factor else math.nan,
            break_p_value=res.get("break_p", math.nan),
            lag_p_value=res.get("lag_p", math.nan),
            n_boot=res.get("n_boot", 0),
        )
    )


def _backtest_rows(
    rows: list[dict[str, Any]],
    base: dict[str, Any],
    g: _Group,
    res: dict[str, Any],
    held: np.ndarray,
    obs: np.ndarray,
    olo: np.ndarray,
    ohi: np.ndarray,
    settings: ForecastSettings,
    grid: np.ndarray,
) -> None:
    observed_cross = _observed_crossing(g.scales, obs, settings.level)
    n_held = int(held.sum())
    idx = np.flatnonzero(held)
    if res["status"] == STATUS_DECLINED:
        nan = np.full(len(g.scales), np.nan)
        pred, lo, hi = nan, nan, nan
        covered: list[Any] = [pd.NA] * len(g.scales)
        cross, ratio = np.nan, np.nan
        status = f"declined: {res['reason']}"
    else:
        pred = res["predict"](g.scales)
        lo = np.interp(np.log(g.scales), np.log(grid), res["low"])
        hi = np.interp(np.log(g.scales), np.log(grid), res["high"])
        covered = [
            bool(olo[i] <= hi[i] and lo[i] <= ohi[i]) if np.isfinite(olo[i]) else pd.NA for i in range(len(g.scales))
        ]
        cross = _crossing(grid, res["point"], settings.level)
        ratio = cross / observed_cross if np.isfinite(cross) and np.isfinite(observed_cross) else np.nan
        status = res["status"] if not res["reason"] else f"{res['status']}: {res['reason']}"
    for i in idx:
        rows.append(
            dict(
                base,
                held_out=n_held,
                model=g.models[i],
                scale=float(g.scales[i]),
                observed=obs[i],
                observed_low=olo[i],
                observed_high=ohi[i],
                predicted=float(pred[i]),
                predicted_low=float(lo[i]),
                predicted_high=float(hi[i]),
                covered=covered[i],
                miss=(not covered[i]) if covered[i] is not pd.NA else pd.NA,
                status=status,
                crossing_predicted=cross,
                crossing_observed=observed_cross,
                crossing_ratio=ratio,
            )
        )


def _summary(fits: pd.DataFrame, backtests: pd.DataFrame, settings: ForecastSettings) -> dict[str, Any]:
    bt = backtests[backtests["covered"].notna()] if len(backtests) else backtests
    return {
        "settings": {
            "to": list(settings.to),
            "level": settings.level,
            "band": settings.band,
            "bootstrap": settings.bootstrap,
            "seed": settings.seed,
            "backtest": settings.backtest,
            "backtest_above": settings.backtest_above,
            "test_level": settings.test_level,
            "loss_tolerance": settings.loss_tolerance,
        },
        "n_groups": int(len(fits)),
        "status_counts": {str(k): int(v) for k, v in fits["status"].value_counts().items()},
        "backtest_points": int(len(bt)),
        "backtest_covered": int(bt["covered"].astype(bool).sum()) if len(bt) else 0,
    }
