"""Figures drawn from result tables (matplotlib Agg; the caller encodes and closes them):
a task's curves with interval bands, the predicted exact match over them, the target-length plot.
Nothing here computes a statistic."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullLocator, ScalarFormatter

from ..schema.vocab import MetricKind, RowKind, Verdict
from .png import pyplot
from .style import (
    DISCONTINUOUS_TITLE,
    KIND_LABEL,
    display_factor,
    factor_label,
    family_groups,
    group_styles,
    is_log_metric,
    log_limits,
    natural_range,
    ordered_metrics,
    padded,
    scale_label,
    short_label,
)

VERDICT_COLOUR = {  # keyed by the verdicts themselves, so a renamed verdict cannot lose its colour
    Verdict.EXPLAINED.value: "#1b7f3b",
    Verdict.NOT_EXPLAINED.value: "#b3261e",
    Verdict.NONE.value: "#555555",
    Verdict.INSUFFICIENT.value: "#8a6d00",
}
# overlay(ax, metric, family colours) draws predictions on a panel; True when it drew something
Overlay = Callable[[Axes, str, Mapping[str, Any]], bool]
PANEL_WIDTH, PANEL_HEIGHT = 3.3, 2.5  # inches per metric panel
MAX_COLUMNS = 4  # metric panels per row
# A fixed layout, in inches: matplotlib's constrained layout measured every tick label of every
# panel and took most of a 10-panel figure's drawing time (about 1.2 s of 2). Each panel cell keeps
# room for its two-line title above, y tick labels to its left and x tick labels and label below,
# at the font sizes plot_task uses; labels are short (scale_label, 3 significant digits).
TOP_MARGIN = 0.5  # the figure's title
PANEL_TOP, PANEL_BOTTOM, PANEL_LEFT, PANEL_RIGHT = 0.47, 0.42, 0.55, 0.12


XLABEL_Y = -0.135  # the x label's top, in axes heights below a panel (under 7-point tick labels)


def band_polygons(x: Any, low: Any, high: Any) -> list[np.ndarray]:
    """The polygons ``fill_between(x, low, high)`` fills: one per run of points where all three
    are finite, upper edge forwards and lower edge back."""
    xs, lo, hi = (np.asarray(a, dtype=float) for a in (x, low, high))
    ok = np.isfinite(xs) & np.isfinite(lo) & np.isfinite(hi)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    out = []
    for a, b in zip(edges[::2], edges[1::2]):
        upper = np.column_stack([xs[a:b], hi[a:b]])
        lower = np.column_stack([xs[a:b], lo[a:b]])[::-1]
        out.append(np.concatenate([upper, lower]))
    return out


def _panel_rect(row: int, col: int, width: float, height: float) -> tuple[float, float, float, float]:
    """The axes rectangle (figure fractions) of the panel in ``row``, ``col`` of a figure of
    ``width`` x ``height`` inches."""
    left = col * PANEL_WIDTH + PANEL_LEFT
    bottom = height - TOP_MARGIN - (row + 1) * PANEL_HEIGHT + PANEL_BOTTOM
    return (
        left / width,
        bottom / height,
        (PANEL_WIDTH - PANEL_LEFT - PANEL_RIGHT) / width,
        (PANEL_HEIGHT - PANEL_TOP - PANEL_BOTTOM) / height,
    )


def _legend_width(labels: Sequence[str]) -> float:
    """Inches a legend column of these labels needs at font size 7 (about 0.06 in a character)."""
    return 0.55 + 0.06 * max((len(label) for label in labels), default=8)


def _ylim(metric: str, kind: str, sub: pd.DataFrame) -> tuple[float, float] | None:
    """The panel's y range, the same in every row of small multiples: a rate's natural range,
    else the range of every family's values and intervals."""
    values = pd.concat([sub["value"], sub["ci_low"], sub["ci_high"]]).to_numpy(dtype=float)
    natural = natural_range(kind, values)
    if natural is not None:
        return padded(*natural, share=0.03)
    finite = values[np.isfinite(values)]
    if is_log_metric(metric):
        finite = finite[finite > 0]
        if not finite.size:
            return None
        return log_limits(*padded(math.log10(finite.min()), math.log10(finite.max()), share=0.05))
    if not finite.size or finite.min() == finite.max():
        return None
    return padded(float(finite.min()), float(finite.max()), share=0.05)


def _xlim(scales: pd.Series) -> tuple[float, float] | None:
    """The x range every panel shares (log axis), a little wider than the scales."""
    x = scales.to_numpy(dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if not x.size:
        return None
    lo, hi = padded(math.log10(x.min()), math.log10(x.max()), share=0.05)
    if hi - lo < 0.2:  # one scale (or nearly): a fifth of a decade around it
        lo, hi = lo - 0.1, hi + 0.1
    return log_limits(lo, hi)


def _drawable(curves: pd.DataFrame, metrics: Sequence[str]) -> tuple[pd.DataFrame, dict[str, float]]:
    """The curves as drawn: a metric whose values pass :data:`~mirage.report.style.HUGE` divided by
    a power of ten (matplotlib's axis arithmetic overflows near 1.7e308), with each metric's factor."""
    factors = {
        m: display_factor(curves.loc[curves["metric"] == m, ["value", "ci_low", "ci_high"]].to_numpy().ravel())
        for m in metrics
    }
    if all(f == 1.0 for f in factors.values()):
        return curves, factors
    out = curves.copy()
    for m, f in factors.items():
        if f != 1.0:
            rows = out["metric"] == m
            out.loc[rows, ["value", "ci_low", "ci_high"]] = out.loc[rows, ["value", "ci_low", "ci_high"]] / f
    return out, factors


def plot_task(
    curves: pd.DataFrame,
    title: str,
    overlay: Overlay | None = None,
    floors: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """One figure for one (task, shots): a panel per metric, discontinuous metrics first.

    Points are models, bands the confidence intervals, x the scale on a log axis. Up to
    :data:`~mirage.report.style.GROUP_SIZE` families share a row of panels, each in its own colour
    and marker; more families become small multiples (one row of panels per group, the same y range
    in every row) so no colour repeats within a panel. Each row's legend sits in its own column to
    the right of the panels, never over them. Rates (discontinuous and nonlinear metrics) show their
    whole range, with the floor (``floors``: metric -> chance levels) dotted.
    ``overlay(ax, metric, family_colours)`` may draw predictions.
    """
    plt = pyplot()
    metrics = ordered_metrics(curves[["metric", "metric_kind"]].itertuples(index=False, name=None))
    families = sorted(map(str, curves["family"].unique()))
    groups = family_groups(families)
    n = len(metrics)
    ncols = min(MAX_COLUMNS, n)
    rows_per_group = int(math.ceil(n / ncols))
    labels = [short_label(f) for f in families] + ["predicted (dashed)", "floor (chance)"]
    legend_w = _legend_width(labels)
    nrows = rows_per_group * len(groups)
    width, height = PANEL_WIDTH * ncols + legend_w, PANEL_HEIGHT * nrows + TOP_MARGIN
    fig = plt.figure(figsize=(width, height))
    curves, factors = _drawable(curves, [m for m, _k in metrics])
    xfactor = display_factor(curves["scale"])  # scales near 1.7e308 overflow the log axis's transform
    if xfactor != 1.0:
        curves = curves.assign(scale=curves["scale"] / xfactor)
        overlay = None  # predictions are on the true scale axis: the tables keep them
    limits = {m: _ylim(m, k, curves[curves["metric"] == m]) for m, k in metrics}
    xlim = _xlim(curves["scale"])
    floors = floors or {}
    for g, members in enumerate(groups):
        styles = group_styles(members)
        colours = {f: s.colour for f, s in styles.items()}
        drew_prediction = False
        drew_floor = False
        for k, (metric, kind) in enumerate(metrics):
            ax = fig.add_axes(_panel_rect(g * rows_per_group + k // ncols, k % ncols, width, height))
            sub = curves[(curves["metric"] == metric) & curves["family"].astype(str).isin(members)]
            bands: list[np.ndarray] = []
            band_colours: list[str] = []
            for fam, fg in sub.groupby("family"):
                fg = fg.sort_values("scale")
                style = styles[str(fam)]
                ax.plot(
                    fg["scale"],
                    fg["value"],
                    marker=style.marker,
                    ls="-",
                    color=style.colour,
                    label=short_label(str(fam)),
                    ms=4,
                    lw=1.4,
                )
                if fg["ci_low"].notna().any():
                    polygons = band_polygons(fg["scale"], fg["ci_low"], fg["ci_high"])
                    bands.extend(polygons)
                    band_colours.extend([style.colour] * len(polygons))
            if bands:
                # every family's band in one collection: what fill_between draws, without its
                # per-call cost (a tenth of a figure's drawing time)
                ax.add_collection(PolyCollection(bands, facecolors=band_colours, alpha=0.16, linewidths=0))
            if overlay is not None:
                drew_prediction = bool(overlay(ax, metric, colours)) or drew_prediction
            for level in floors.get(metric, ()):
                ax.axhline(level / factors[metric], color="#444444", ls=":", lw=1.0, zorder=0)
                drew_floor = True
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost most of the drawing time
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: scale_label(v)))
            if xlim is not None:
                ax.set_xlim(*xlim)
            if is_log_metric(metric):
                ax.set_yscale("log")  # perplexity is exp(loss): on a log axis it reads as the loss
                ax.yaxis.set_major_formatter(ScalarFormatter())
                ax.yaxis.set_minor_locator(NullLocator())
            ylim = limits[metric]
            if ylim is not None:
                ax.set_ylim(*ylim)
            everything = curves[curves["metric"] == metric]
            better = "↑" if bool(everything["higher_is_better"].iloc[0]) else "↓"
            ax.set_title(
                f"{metric} {better}{factor_label(factors[metric])}\n{KIND_LABEL.get(kind, kind)}",
                y=1.0,  # placed, not searched for: nothing is drawn above a panel
                fontsize=9,
                color=DISCONTINUOUS_TITLE if kind == MetricKind.DISCONTINUOUS.value else "#1d1d1f",
            )
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25, lw=0.5)
            ax.set_xlabel("scale" + factor_label(xfactor), fontsize=8)
            ax.xaxis.set_label_coords(0.5, XLABEL_Y)  # placed below the tick labels, not measured
        top_row = g * rows_per_group
        legend_ax = fig.add_axes(
            (
                (PANEL_WIDTH * ncols + 0.1) / width,
                1 - (TOP_MARGIN + PANEL_HEIGHT * (top_row + rows_per_group)) / height,
                (legend_w - 0.15) / width,
                (PANEL_HEIGHT * rows_per_group - PANEL_TOP) / height,
            )
        )
        legend_ax.axis("off")
        handles = [
            Line2D([], [], color=s.colour, marker=s.marker, ms=4, lw=1.4, label=short_label(f))
            for f, s in styles.items()
        ]
        if drew_prediction:
            handles.append(Line2D([], [], color="#444444", ls="--", lw=1.2, label="predicted (dashed)"))
        if drew_floor:
            handles.append(Line2D([], [], color="#444444", ls=":", lw=1.0, label="floor (chance)"))
        legend_ax.legend(
            handles=handles,
            loc="upper left",
            fontsize=7,
            frameon=False,
            borderaxespad=0.0,
            title=f"families {g + 1}/{len(groups)}" if len(groups) > 1 else None,
            title_fontsize=7,
        )
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    return fig


def draw_prediction(ax: Axes, curve: pd.DataFrame, colour: Any, label: str) -> None:
    """The one drawer of a predicted exact-match curve: dashed, over its bootstrap band
    (``curve``: the ``row_kind == "curve"`` rows of ``predictions.csv``, sorted by scale)."""
    ax.plot(curve["scale"], curve["predicted_exact_match"], "--", color=colour, lw=1.2, alpha=0.9, label=label)
    ax.fill_between(curve["scale"], curve["predicted_low"], curve["predicted_high"], color=colour, alpha=0.08, lw=0)


OverlayFactory = Callable[[Any, Any], "Overlay | None"]


def prediction_overlay(predictions: pd.DataFrame | None) -> OverlayFactory | None:
    """An overlay factory for :func:`mirage.report.analysis.task_figures`: on the exact-match
    panel, the exact match predicted from the continuous metric (dashed) with its bootstrap band,
    for the families drawn on that panel."""
    if predictions is None or predictions.empty:
        return None
    curves = predictions[predictions["row_kind"] == RowKind.CURVE.value]

    def factory(task: Any, shots: Any) -> Overlay | None:
        sel = curves[curves["task"] == task]
        if "shots" in sel.columns and not pd.isna(shots):
            sel = sel[sel["shots"] == shots]
        if sel.empty:
            return None

        def overlay(ax: Axes, metric: str, colours: Mapping[str, Any]) -> bool:
            if metric != "exact_match":
                return False
            drew = False
            for fam, g in sel.groupby("family"):
                if str(fam) not in colours:
                    continue  # another row of the small multiples draws it
                draw_prediction(ax, g.sort_values("scale"), colours[str(fam)], "_nolegend_")
                drew = True
            return drew

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
