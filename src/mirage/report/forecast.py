"""The figure, interactive charts and page of ``mirage forecast``
(:class:`~mirage.schema.results.ForecastResult`)."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from ..schema.results import ForecastResult
from ..schema.vocab import CrossingKind, ForecastRow
from .html import anchor_id, html_document, table_html
from .interactive import (
    Chart,
    band_trace,
    chart_html,
    interactive_document,
    line_trace,
    point_trace,
    search_box,
    style_figure,
)
from .png import data_uri, pyplot

FORECAST_COLOUR, OBSERVED_COLOUR = "#0072B2", "#D55E00"  # Okabe & Ito blue and vermilion


def _groups(result: ForecastResult, max_panels: int) -> list[Any]:
    """The (family, task, shots, metric) of each forecast drawn, at most ``max_panels``."""
    keys = result.fits[["family", "task", "shots", "metric"]].drop_duplicates().head(max_panels)
    return list(keys.itertuples(index=False))


def _of(frame: pd.DataFrame, key: Any) -> pd.DataFrame:
    """The rows of ``frame`` that belong to forecast ``key`` (shots NA matches NA)."""
    if not len(frame):
        return frame
    keep = (frame["family"] == key.family) & (frame["task"] == key.task) & (frame["metric"] == key.metric)
    if "shots" in frame.columns:
        keep &= (frame["shots"] == key.shots) if pd.notna(key.shots) else frame["shots"].isna()
    return frame[keep]


def _crossing(result: ForecastResult, key: Any) -> float:
    """The scale at which forecast ``key`` reaches the level (NaN when it does not)."""
    cr = _of(result.crossings, key)
    cr = cr[cr["crossing"] == CrossingKind.LEVEL.value]
    return float(cr["scale"].iloc[0]) if len(cr) and pd.notna(cr["scale"].iloc[0]) else math.nan


def _title(result: ForecastResult, key: Any) -> tuple[str, str]:
    """(the forecast's name, its status) for a panel title."""
    fit = _of(result.fits, key).iloc[0]
    shots = "" if pd.isna(key.shots) else f", {int(key.shots)}-shot"
    return f"{key.family} · {key.task}{shots}", str(fit["status"])


def forecast_figure(result: ForecastResult, max_panels: int = 12) -> Figure:
    """One panel per group: observed points (Wilson bars; held-out ones hollow), the forecast and its
    band on a log scale axis, the crossing marked, requested scales as diamonds."""
    plt = pyplot()
    f = result.forecast
    keys = _groups(result, max_panels)
    n = max(len(keys), 1)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.5 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):  # spare axes are turned off
        sel = _of(f, key)
        curve = sel[sel["row_kind"] == ForecastRow.CURVE.value].sort_values("scale")
        if len(curve):
            ax.fill_between(
                curve["scale"],
                curve["predicted_low"],
                curve["predicted_high"],
                color=FORECAST_COLOUR,
                alpha=0.18,
                lw=0,
                label=f"{result.summary['settings']['band']:.0%} band",
            )
            ax.plot(curve["scale"], curve["predicted"], "-", color=FORECAST_COLOUR, lw=1.5, label="forecast")
        for kind, face, label in (
            (ForecastRow.OBSERVED.value, OBSERVED_COLOUR, "observed (fit)"),
            (ForecastRow.HELD_OUT.value, "white", "held out"),
        ):
            pts = sel[sel["row_kind"] == kind].sort_values("scale")
            if len(pts):
                yerr = np.vstack([pts["observed"] - pts["observed_low"], pts["observed_high"] - pts["observed"]])
                ax.errorbar(
                    pts["scale"],
                    pts["observed"],
                    yerr=np.clip(np.nan_to_num(yerr), 0, None),
                    fmt="o",
                    mfc=face,
                    mec=OBSERVED_COLOUR,
                    ecolor=OBSERVED_COLOUR,
                    ms=5,
                    capsize=2,
                    label=label,
                )
        ext = sel[sel["row_kind"] == ForecastRow.EXTRAPOLATED.value]
        if len(ext):
            ax.plot(ext["scale"], ext["predicted"], "D", color=FORECAST_COLOUR, ms=6, label="requested scales")
        crossing = _crossing(result, key)
        if np.isfinite(crossing):
            ax.axvline(crossing, color="#555", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("scale", fontsize=8)
        ax.set_ylabel(str(key.metric), fontsize=8)
        name, status = _title(result, key)
        ax.set_title(f"{name}\n{status}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    # one legend beside the top right panel, outside every panel
    axes[0, len(keys[:cols]) - 1 if len(keys) else 0].legend(
        fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0
    )
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def forecast_charts(result: ForecastResult, max_panels: int = 12, anchor: str | None = None) -> list[Chart]:
    """One interactive chart per forecast (at most ``max_panels``): the band and the forecast on a
    log scale axis, the observed models with their Wilson intervals (held-out ones hollow), the
    requested scales as diamonds and the level's crossing dotted; hover a point for its model,
    scale, value, interval and n; click a legend entry to hide it. ``anchor`` names the first
    chart's element (default: a hash of its forecast)."""
    band = result.summary["settings"]["band"]
    charts = []
    for i, key in enumerate(_groups(result, max_panels)):
        sel = _of(result.forecast, key)
        name, status = _title(result, key)
        fig = go.Figure()
        curve = sel[sel["row_kind"] == ForecastRow.CURVE.value].sort_values("scale")
        if len(curve):
            fig.add_trace(
                band_trace(
                    curve["scale"],
                    curve["predicted_low"],
                    curve["predicted_high"],
                    colour=FORECAST_COLOUR,
                    legendgroup="forecast",
                    name=f"{band:.0%} band",
                )
            )
            fig.add_trace(
                line_trace(
                    curve["scale"],
                    curve["predicted"],
                    name=f"forecast ({band:.0%} band)",
                    colour=FORECAST_COLOUR,
                    legendgroup="forecast",
                    hover="forecast<br>scale %{x:.4g}<br>"
                    + f"{html.escape(str(key.metric))}"
                    + " %{y:.4g}<extra></extra>",
                )
            )
        for kind, symbol, label in (
            (ForecastRow.OBSERVED.value, "circle", "observed (fit)"),
            (ForecastRow.HELD_OUT.value, "circle-open", "held out"),
        ):
            pts = sel[sel["row_kind"] == kind]
            if len(pts):
                frame = pts.rename(columns={"observed": "value", "observed_low": "ci_low", "observed_high": "ci_high"})
                fig.add_trace(
                    point_trace(
                        frame, name=label, colour=OBSERVED_COLOUR, symbol=symbol, metric=str(key.metric), mode="markers"
                    )
                )
        ext = sel[sel["row_kind"] == ForecastRow.EXTRAPOLATED.value]
        if len(ext):
            frame = ext.assign(model="requested scale").rename(
                columns={"predicted": "value", "predicted_low": "ci_low", "predicted_high": "ci_high"}
            )
            fig.add_trace(
                point_trace(
                    frame,
                    name="requested scales",
                    colour=FORECAST_COLOUR,
                    symbol="diamond",
                    metric=str(key.metric),
                    mode="markers",
                )
            )
        crossing = _crossing(result, key)
        if np.isfinite(crossing):
            fig.add_vline(x=crossing, line=dict(color="#555", width=1, dash="dot"))
        fig.update_xaxes(type="log", title_text="scale")
        fig.update_yaxes(range=[-0.03, 1.03], title_text=str(key.metric))  # a rate: its whole 0-1 range
        style_figure(fig, height=380, legend_title="click: hide/show", title=html.escape(f"{name}: {status}"))
        where = (
            f"reaches {result.summary['settings']['level']:g} at {crossing:.3g} (dotted)"
            if np.isfinite(crossing)
            else "does not reach the level in range"
        )
        charts.append(
            Chart(
                anchor=anchor if anchor is not None and i == 0 else anchor_id("forecast", *key),
                figure=fig,
                caption=f"{name}: {key.metric} forecast from the smooth per-token law ({status}); the forecast "
                f"{where}. Hover a point for its model, scale, value, interval and n.",
                task=str(key.task),
                families=(str(key.family),),
            )
        )
    return charts


def forecast_report(
    result: ForecastResult, png: bytes, title: str = "mirage forecast", charts: list[Chart] | None = None
) -> str:
    """The self-contained page: what became of each forecast, the figure (the interactive
    ``charts`` when given, with a search box over tasks and families; else the ``png``), the law,
    the crossings and the back-test."""
    s = result.summary
    status = ", ".join(f"{v} {k}" for k, v in s["status_counts"].items())
    backtest = (
        f"Back-test: the band covers {s['backtest_covered']} of {s['backtest_points']} held-out points."
        if s["backtest_points"]
        else "No back-test (pass --backtest K)."
    )
    parts = [
        f'<div class="box"><p>{s["n_groups"]} forecast(s): {html.escape(status)}. {backtest}</p></div>',
        *(
            [search_box(), *(chart_html(c) for c in charts)]
            if charts
            else [f'<figure><img alt="forecast" src="{data_uri(png)}"></figure>']
        ),
        "<h2>The law and its transform</h2>",
        table_html(result.fits, max_rows=50),
        "<h2>Crossings</h2><p><code>level</code>: the scale at which the forecast reaches the level (with the "
        "band's scales); <code>above_floor</code>: the first scale at which this test set would show the model "
        "above its floor with 80 % power.</p>",
        table_html(result.crossings, max_rows=50),
    ]
    if len(result.backtests):
        parts += [
            "<h2>Back-test</h2><p>Held-out models forecast from the others: <code>covered</code> when the "
            "observed Wilson interval overlaps the band; <code>crossing_ratio</code> = predicted / observed "
            "crossing scale.</p>",
            table_html(result.backtests, max_rows=60),
        ]
    extra = result.forecast[result.forecast["row_kind"] == ForecastRow.EXTRAPOLATED.value]
    if len(extra):
        parts += ["<h2>Requested scales</h2>", table_html(extra, max_rows=60)]
    parts.append('<p class="muted">Method, assumptions and known failure cases: docs/forecast.md.</p>')
    if charts is None:
        return html_document(title, "\n".join(parts))
    return interactive_document(title, "\n".join(parts), plotly=bool(charts))
