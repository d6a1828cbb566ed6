"""Figures drawn from result tables (matplotlib Agg; the caller encodes and closes them):
a task's curves with interval bands, the predicted exact match over them, the target-length plot.
Nothing here computes a statistic."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..schema.vocab import MetricKind, RowKind, Verdict
from .png import pyplot

KIND_LABEL = {
    MetricKind.DISCONTINUOUS.value: "discontinuous",
    MetricKind.NONLINEAR.value: "nonlinear",
    MetricKind.LINEAR.value: "continuous (linear)",
    MetricKind.UNKNOWN.value: "unknown kind",
}
VERDICT_COLOUR = {  # keyed by the verdicts themselves, so a renamed verdict cannot lose its colour
    Verdict.EXPLAINED.value: "#1b7f3b",
    Verdict.NOT_EXPLAINED.value: "#b3261e",
    Verdict.NONE.value: "#555555",
    Verdict.INSUFFICIENT.value: "#8a6d00",
}
_KIND_ORDER = {
    MetricKind.DISCONTINUOUS.value: 0,
    MetricKind.NONLINEAR.value: 1,
    MetricKind.LINEAR.value: 2,
    MetricKind.UNKNOWN.value: 3,
}
Overlay = Callable[[Axes, str, Mapping[str, Any]], None]


def plot_task(
    curves: pd.DataFrame, title: str, verdicts: pd.DataFrame | None = None, overlay: Overlay | None = None
) -> Figure:
    """One figure for one (task, shots): a panel per metric, discontinuous metrics first.

    Each family is one colour; points are models, bands the confidence intervals, the x axis
    the scale on a log axis. ``overlay(ax, metric, family_colours)`` may draw predictions.
    """
    plt = pyplot()
    metrics = (
        curves[["metric", "metric_kind"]]
        .drop_duplicates()
        .assign(order=lambda f: f["metric_kind"].map(_KIND_ORDER).fillna(9))
        .sort_values(["order", "metric"])
    )
    n = len(metrics)
    ncols = min(4, n)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    families = sorted(curves["family"].unique())
    cmap = plt.get_cmap("tab10")
    colours = {f: cmap(i % 10) for i, f in enumerate(families)}
    for ax, (metric, kind) in zip(axes.ravel(), metrics[["metric", "metric_kind"]].itertuples(index=False)):
        sub = curves[curves["metric"] == metric]
        for fam, g in sub.groupby("family"):
            g = g.sort_values("scale")
            ax.plot(g["scale"], g["value"], "o-", color=colours[fam], label=fam, ms=4, lw=1.5)
            if g["ci_low"].notna().any():
                ax.fill_between(g["scale"], g["ci_low"], g["ci_high"], color=colours[fam], alpha=0.18, lw=0)
        if overlay is not None:
            overlay(ax, metric, colours)
        ax.set_xscale("log")
        if metric.lower().endswith("perplexity") or metric.lower() == "ppl":
            ax.set_yscale("log")  # perplexity is exp(loss): on a log axis it reads as the loss
        better = "↑" if bool(sub["higher_is_better"].iloc[0]) else "↓"
        ax.set_title(
            f"{metric} {better}\n{KIND_LABEL.get(kind, kind)}",
            fontsize=9,
            color="#b3261e" if kind == "discontinuous" else "#1d1d1f",
        )
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, which="both", lw=0.5)
        ax.set_xlabel("scale", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if len(families) > 1 or n > 1:
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(len(families), 6),
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, -0.02),
        )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def draw_prediction(ax: Axes, curve: pd.DataFrame, colour: Any, label: str) -> None:
    """The one drawer of a predicted exact-match curve: dashed, over its bootstrap band
    (``curve``: the ``row_kind == "curve"`` rows of ``predictions.csv``, sorted by scale)."""
    ax.plot(curve["scale"], curve["predicted_exact_match"], "--", color=colour, lw=1.2, alpha=0.9, label=label)
    ax.fill_between(curve["scale"], curve["predicted_low"], curve["predicted_high"], color=colour, alpha=0.08, lw=0)


def prediction_overlay(predictions: pd.DataFrame | None) -> Callable[[Any, Any], Overlay | None] | None:
    """An overlay factory for :func:`write_task_figures`: on the exact-match panel, the exact
    match predicted from the continuous metric (dashed) with its bootstrap band."""
    if predictions is None or predictions.empty:
        return None
    curves = predictions[predictions["row_kind"] == RowKind.CURVE.value]

    def factory(task: Any, shots: Any) -> Overlay | None:
        sel = curves[curves["task"] == task]
        if "shots" in sel.columns and not pd.isna(shots):
            sel = sel[sel["shots"] == shots]
        if sel.empty:
            return None

        def overlay(ax: Axes, metric: str, colours: Mapping[str, Any]) -> None:
            if metric != "exact_match":
                return
            for fam, g in sel.groupby("family"):
                g = g.sort_values("scale")
                draw_prediction(ax, g, colours.get(fam, "k"), f"{fam}: predicted from {g['source'].iloc[0]}")

        return overlay

    return factory


def plot_prediction(ax: Axes, predictions: pd.DataFrame, colour: str = "C0", label: str | None = None) -> None:
    """Draw one (family, task)'s observed exact match (Wilson bars) with the predicted curve and band."""
    curve = predictions[predictions["row_kind"] == RowKind.CURVE.value].sort_values("scale")
    models = predictions[predictions["row_kind"] == RowKind.MODEL.value].sort_values("scale")
    extra = predictions[predictions["row_kind"] == RowKind.EXTRAPOLATED.value].sort_values("scale")
    if len(curve):
        draw_prediction(ax, curve, colour, f"{label} predicted" if label else "predicted from continuous metric")
    obs = models.dropna(subset=["observed_exact_match"])
    if len(obs):
        yerr = np.vstack(
            [obs["observed_exact_match"] - obs["observed_low"], obs["observed_high"] - obs["observed_exact_match"]]
        )
        ax.errorbar(
            obs["scale"],
            obs["observed_exact_match"],
            yerr=np.clip(yerr, 0, None),
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label=f"{label} observed" if label else "observed exact match",
        )
    if len(extra):
        ax.errorbar(
            extra["scale"],
            extra["predicted_exact_match"],
            yerr=np.clip(
                np.vstack(
                    [
                        extra["predicted_exact_match"] - extra["predicted_low"],
                        extra["predicted_high"] - extra["predicted_exact_match"],
                    ]
                ),
                0,
                None,
            ),
            fmt="D",
            mfc="none",
            color=colour,
            ms=5,
            capsize=2,
            label="extrapolated",
        )
    ax.set_xscale("log")
    ax.set_xlabel("scale")
    ax.set_ylabel("exact match")


def exact_match_errorbars(ax: Axes, pos: pd.DataFrame, **style: Any) -> None:
    """Observed exact match by target length with its interval (rows of the lengths table whose
    exact match is above zero, for a log axis)."""
    yerr = np.vstack(
        [
            pos["observed_exact_match"] - pos["exact_match_low"],
            pos["exact_match_high"] - pos["observed_exact_match"],
        ]
    )
    ax.errorbar(pos["length"], pos["observed_exact_match"], yerr=np.clip(yerr, 0, None), ms=4, capsize=2, **style)


def plot_length_analysis(ax: Axes, lengths_table: pd.DataFrame) -> None:
    """Observed exact match vs target length (log y, Wilson bars) with each model's ``p_hat ** L``."""
    for i, (model, g) in enumerate(lengths_table.groupby("model", sort=False)):
        g = g.sort_values("length")
        colour = f"C{i % 10}"
        pos = g[g["observed_exact_match"] > 0]
        if len(pos):
            exact_match_errorbars(ax, pos, fmt="o", color=colour, label=str(model))
        ax.plot(g["length"], g["predicted_exact_match"], "--", color=colour, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("target length (tokens)")
    ax.set_ylabel("exact match (dashed: p̂^L)")
