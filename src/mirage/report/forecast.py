"""The figure and page of ``mirage forecast`` (:class:`~mirage.schema.results.ForecastResult`)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..schema.results import ForecastResult
from ..schema.vocab import CrossingKind, ForecastRow
from .html import html_document, table_html
from .png import data_uri, pyplot


def forecast_figure(result: ForecastResult, max_panels: int = 12) -> Figure:
    """One panel per group: observed points (Wilson bars; held-out ones hollow), the forecast and its
    band on a log scale axis, the crossing marked, requested scales as diamonds."""
    plt = pyplot()
    f = result.forecast
    keys = result.fits[["family", "task", "shots", "metric"]].drop_duplicates().head(max_panels)
    n = max(len(keys), 1)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.5 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys.itertuples(index=False), strict=False):  # spare axes are turned off
        sel = f[
            (f["family"] == key.family)
            & (f["task"] == key.task)
            & (f["metric"] == key.metric)
            & ((f["shots"] == key.shots) if pd.notna(key.shots) else f["shots"].isna())
        ]
        curve = sel[sel["row_kind"] == ForecastRow.CURVE.value].sort_values("scale")
        if len(curve):
            ax.fill_between(
                curve["scale"],
                curve["predicted_low"],
                curve["predicted_high"],
                color="#0072B2",
                alpha=0.18,
                lw=0,
                label=f"{result.summary['settings']['band']:.0%} band",
            )
            ax.plot(curve["scale"], curve["predicted"], "-", color="#0072B2", lw=1.5, label="forecast")
        for kind, face, label in (
            (ForecastRow.OBSERVED.value, "#D55E00", "observed (fit)"),
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
                    mec="#D55E00",
                    ecolor="#D55E00",
                    ms=5,
                    capsize=2,
                    label=label,
                )
        ext = sel[sel["row_kind"] == ForecastRow.EXTRAPOLATED.value]
        if len(ext):
            ax.plot(ext["scale"], ext["predicted"], "D", color="#0072B2", ms=6, label="requested scales")
        cr = result.crossings
        c = cr[
            (cr["family"] == key.family)
            & (cr["task"] == key.task)
            & (cr["metric"] == key.metric)
            & (cr["crossing"] == CrossingKind.LEVEL.value)
        ]
        if len(c) and np.isfinite(c["scale"].iloc[0]):
            ax.axvline(c["scale"].iloc[0], color="#555", ls=":", lw=1)
        fit = result.fits[
            (result.fits["family"] == key.family)
            & (result.fits["task"] == key.task)
            & (result.fits["metric"] == key.metric)
        ].iloc[0]
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("scale", fontsize=8)
        ax.set_ylabel(str(key.metric), fontsize=8)
        shots = "" if pd.isna(key.shots) else f", {int(key.shots)}-shot"
        ax.set_title(f"{key.family} · {key.task}{shots}\n{fit['status']}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=6, frameon=False, loc="upper left")
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def forecast_report(result: ForecastResult, png: bytes, title: str = "mirage forecast") -> str:
    """The self-contained page: what became of each forecast, the figure, the law, the crossings
    and the back-test."""
    s = result.summary
    status = ", ".join(f"{v} {k}" for k, v in s["status_counts"].items())
    backtest = (
        f"Back-test: the band covers {s['backtest_covered']} of {s['backtest_points']} held-out points."
        if s["backtest_points"]
        else "No back-test (pass --backtest K)."
    )
    parts = [
        f'<div class="box"><p>{s["n_groups"]} forecast(s): {html.escape(status)}. {backtest}</p></div>',
        f'<figure><img alt="forecast" src="{data_uri(png)}"></figure>',
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
    return html_document(title, "\n".join(parts))
