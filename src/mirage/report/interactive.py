"""Interactive figures in one self-contained page: Plotly charts whose JavaScript is inlined.

Every report that shows curves is, by default, one HTML file holding plotly.js (inlined once, as
``include_plotlyjs=True`` would; nothing is fetched), each chart's figure as JSON, and a small
script that draws a chart when it scrolls into view and runs the page's search box. On a chart a
reader hovers a point for its model, scale, value, interval and n, clicks a family (or a target
length, a metric) in the legend to hide or show it, double-clicks to see it alone, and zooms with
the mouse. The search box filters the charts (by task or family: a chart whose task matches shows
every family; otherwise only the families that match) and the rows of every table marked
searchable.

Small charts are built with plotly.py's graph objects, so every property is checked by Plotly's
own schema when the report is written. The task charts of ``mirage analyze`` (up to
``--max-figures`` of 100 traces each) are built as plain figure dicts on a ``make_subplots``
layout: graph objects validated every property of every trace and took most of the page's
writing time; the tests put those dicts through ``go.Figure`` so Plotly's schema still checks them.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .html import html_document
from .style import (
    DISCONTINUOUS_TITLE,
    KIND_LABEL,
    is_log_metric,
    natural_range,
    ordered_metrics,
    padded,
)

# 24 colours designed to stay apart (Plotly's Dark24); past 24 families the marker changes too,
# so every family of a 50-family chart has its own (colour, marker)
COLOURS: tuple[str, ...] = tuple(qualitative.Dark24)
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross")
MAX_COLUMNS = 4
PANEL_HEIGHT = 300  # pixels per row of panels
LEGEND_ROW = 21  # pixels per legend entry
MAX_HEIGHT = 1000  # past it the legend scrolls
FONT = "-apple-system, Segoe UI, Helvetica, Arial, sans-serif"


@functools.cache
def plotly_js() -> str:
    """plotly.js (minified), as plotly.py ships it: inlined once per page, never fetched."""
    return str(get_plotlyjs())


@dataclass(frozen=True)
class Chart:
    """One interactive chart of a page.

    ``anchor``: the element id links point at; ``task`` and ``families``: what the search box
    matches (a chart whose task matches shows whole; otherwise only matching families show);
    ``caption``: the text under it.
    """

    anchor: str
    figure: go.Figure | dict[str, Any]  # a graph object, or the figure's JSON dict (data, layout)
    caption: str = ""
    task: str = ""
    families: tuple[str, ...] = field(default=())


def family_style(index: int) -> tuple[str, str]:
    """(colour, marker symbol) of the ``index``-th family of a chart: distinct up to 144 families."""
    return COLOURS[index % len(COLOURS)], SYMBOLS[(index // len(COLOURS)) % len(SYMBOLS)]


def _num(v: Any, spec: str = ".4g") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    if math.isnan(f):
        return "n/a"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return format(f, spec)


def _rounded(values: Iterable[Any], digits: int = 6) -> list[float | None]:
    """Floats to ``digits`` significant digits (a smaller page), NaN as a gap (None)."""
    out: list[float | None] = []
    for v in values:
        f = float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan
        out.append(None if not math.isfinite(f) else float(f"{f:.{digits}g}"))
    return out


def interval_text(low: Any, high: Any) -> str:
    """``[low, high]`` for a tooltip, or ``none`` when the inputs give no interval."""
    lo, hi = _num(low), _num(high)
    return "none" if lo in ("", "n/a") or hi in ("", "n/a") else f"[{lo}, {hi}]"


def n_text(n: Any) -> str:
    """The number of test items behind a point, or ``not given``."""
    try:
        f = float(n)
    except (TypeError, ValueError):
        return "not given"
    return "not given" if not math.isfinite(f) else f"{int(round(f)):,}"


POINT_HOVER = (
    "<b>%{fullData.name}</b><br>model %{customdata[0]}<br>%{customdata[5]} %{customdata[4]}<br>value %{y:.4g}"
    "<br>interval %{customdata[1]}<br>n %{customdata[2]}<extra>%{customdata[3]}</extra>"
)


def point_trace(
    frame: pd.DataFrame,
    *,
    name: str,
    colour: str,
    symbol: str = "circle",
    legendgroup: str | None = None,
    showlegend: bool = True,
    metric: str = "",
    x: str = "scale",
    mode: str = "lines+markers",
    dodge: float = 1.0,
) -> dict[str, Any]:
    """One curve: points (models) joined by a line, asymmetric interval bars from ``ci_low`` and
    ``ci_high``, and a tooltip with model, scale, value, interval and n. ``frame`` has ``model``,
    ``x``, ``value`` and optionally ``ci_low``, ``ci_high``, ``n_samples``; sorted by ``x`` here.
    ``dodge`` multiplies x where it is drawn (two sets of points at one scale side by side on a
    log axis); the tooltip keeps the true x. A trace dict (``fig.add_trace`` takes it)."""
    # the columns as arrays in the order of frame.sort_values(x) (its quicksort, NaN last),
    # without building the sorted frame: a chart has a hundred of these small traces
    column = frame[x]
    values = column.to_numpy()
    plain = isinstance(column.dtype, np.dtype) and not pd.isna(values).any()  # Arrow or nullable: pandas' own sort
    order = np.argsort(values, kind="quicksort") if plain else _sorted_positions(frame, x)
    y = frame["value"].to_numpy(dtype=float)[order]
    lo = frame["ci_low"].to_numpy(dtype=float)[order] if "ci_low" in frame else np.full(len(frame), np.nan)
    hi = frame["ci_high"].to_numpy(dtype=float)[order] if "ci_high" in frame else np.full(len(frame), np.nan)
    n = frame["n_samples"].to_numpy()[order] if "n_samples" in frame else [None] * len(frame)
    models = frame["model"].to_numpy()[order] if "model" in frame else [""] * len(frame)
    xs = column.iloc[order]  # read as the sorted frame's column was (pd.NA stays pd.NA)
    custom = [
        [str(m), interval_text(a, b), n_text(k), metric, _num(xv), x] for m, a, b, k, xv in zip(models, lo, hi, n, xs)
    ]
    has_ci = bool(np.isfinite(lo).any() and np.isfinite(hi).any())
    error_y = (
        dict(
            type="data",
            symmetric=False,
            array=_rounded(np.clip(hi - y, 0, None)),
            arrayminus=_rounded(np.clip(y - lo, 0, None)),
            thickness=1.2,
            width=3,
            color=colour,
        )
        if has_ci
        else None
    )
    return dict(
        type="scatter",
        x=_rounded(xs.to_numpy(dtype=float) * dodge),
        y=_rounded(y),
        mode=mode,
        name=name,
        legendgroup=legendgroup if legendgroup is not None else name,
        showlegend=showlegend,
        marker=dict(color=colour, symbol=symbol, size=7),
        line=dict(color=colour, width=1.6),
        error_y=error_y,
        customdata=custom,
        hovertemplate=POINT_HOVER,
    )


def _sorted_positions(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The row positions of ``frame.sort_values(column)``."""
    return frame.reset_index(drop=True).sort_values(column).index.to_numpy()


def line_trace(
    x: Iterable[Any],
    y: Iterable[Any],
    *,
    name: str,
    colour: str,
    legendgroup: str | None = None,
    showlegend: bool = True,
    dash: str = "solid",
    hover: str = "%{fullData.name}<br>x %{x:.4g}<br>y %{y:.4g}<extra></extra>",
    width: float = 1.8,
) -> dict[str, Any]:
    """A drawn line (a theory curve, a prediction): no markers, its own tooltip."""
    return dict(
        type="scatter",
        x=_rounded(x),
        y=_rounded(y),
        mode="lines",
        name=name,
        legendgroup=legendgroup if legendgroup is not None else name,
        showlegend=showlegend,
        line=dict(color=colour, width=width, dash=dash),
        hovertemplate=hover,
    )


def band_trace(
    x: Iterable[Any], low: Iterable[Any], high: Iterable[Any], *, colour: str, legendgroup: str, name: str
) -> dict[str, Any]:
    """A shaded band between ``low`` and ``high`` (one closed polygon), toggled with its group."""
    xs = _rounded(x)
    lo, hi = _rounded(low), _rounded(high)
    return dict(
        type="scatter",
        x=xs + xs[::-1],
        y=hi + lo[::-1],
        mode="lines",
        fill="toself",
        fillcolor=_transparent(colour, 0.12),
        line=dict(width=0, color=colour),
        name=name,
        legendgroup=legendgroup,
        showlegend=False,
        hoverinfo="skip",
    )


def _transparent(colour: str, alpha: float) -> str:
    c = colour.lstrip("#")
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


AXIS_STYLE: dict[str, Any] = dict(
    showgrid=True, gridcolor="#e6e6e6", zeroline=False, showline=True, linecolor="#999", ticks="outside"
)


def layout_style(*, height: int, legend_title: str | None, title: str | None = None) -> dict[str, Any]:
    """The layout every chart shares: white, light grids, the legend outside on the right (Plotly
    widens the margin for it, so it never covers a panel), click toggles, closest-point hover."""
    return dict(
        template="none",  # no theme JSON in every chart: the page stays small
        title=dict(text=title, x=0.01, font=dict(size=15)) if title else None,
        height=height,
        margin=dict(l=60, r=20, t=110 if title else 60, b=50),
        font=dict(family=FONT, size=12, color="#1d1d1f"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        hovermode="closest",
        hoverlabel=dict(font=dict(family=FONT, size=12)),
        legend=dict(
            title=dict(text=legend_title) if legend_title else None,
            x=1.02,
            xanchor="left",
            y=1.0,
            yanchor="top",
            itemclick="toggle",
            itemdoubleclick="toggleothers",
            groupclick="togglegroup",
            tracegroupgap=1,  # every family is its own group: no 10-pixel gap between them
            font=dict(size=11),
        ),
    )


def style_figure(fig: go.Figure, *, height: int, legend_title: str | None, title: str | None = None) -> go.Figure:
    """:func:`layout_style` and :data:`AXIS_STYLE` applied to a graph-object figure."""
    fig.update_layout(layout_style(height=height, legend_title=legend_title, title=title))
    fig.update_xaxes(AXIS_STYLE)
    fig.update_yaxes(AXIS_STYLE)
    return fig


def chart_height(n_rows: int, n_legend_entries: int) -> int:
    """Pixels for ``n_rows`` of panels, tall enough for the legend up to :data:`MAX_HEIGHT`."""
    return int(
        min(
            max(PANEL_HEIGHT * n_rows + 90, LEGEND_ROW * n_legend_entries + 110),
            max(MAX_HEIGHT, PANEL_HEIGHT * n_rows + 90),
        )
    )


@functools.lru_cache(maxsize=32)
def _subplot_grid(nrows: int, ncols: int, titles: tuple[str, ...]) -> dict[str, Any]:
    """Plotly's grid of ``nrows`` x ``ncols`` panels with these titles, as its layout JSON (axis
    domains, title annotations); remembered, since the tasks of one analysis mostly share their
    metrics (``make_subplots`` was most of a chart's time). Callers change a deep copy."""
    layout: dict[str, Any] = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=list(titles),
        horizontal_spacing=0.07 if ncols > 1 else 0.0,
        vertical_spacing=min(0.3, 0.55 / max(nrows, 1)) if nrows > 1 else 0.0,
    ).layout.to_plotly_json()
    return layout


def metric_panels(
    curves: pd.DataFrame,
    *,
    floors: Mapping[str, Sequence[float]] | None = None,
    predictions: pd.DataFrame | None = None,
    scale_label: str = "scale",
    title: str | None = None,
) -> dict[str, Any]:
    """One task's curves side by side: a panel per metric, discontinuous ones first, a trace per
    family with its intervals, rates on their whole range with the floor dotted, perplexities on
    a log axis; clicking a family in the legend hides it in every panel. ``predictions``: the
    ``row_kind == "curve"`` rows of ``predictions.csv`` for this task (drawn dashed on the
    exact-match panel, toggled with their family). The figure as its JSON dict (``data``,
    ``layout``): ``go.Figure(metric_panels(...))`` validates it."""
    metrics = ordered_metrics(curves[["metric", "metric_kind"]].itertuples(index=False, name=None))
    n = len(metrics)
    ncols = min(MAX_COLUMNS, max(n, 1))
    nrows = math.ceil(n / ncols)
    by_metric = dict(tuple(curves.groupby("metric", sort=False)))
    titles = []
    for metric, kind in metrics:
        better = "↑" if bool(by_metric[metric]["higher_is_better"].iloc[0]) else "↓"
        colour = DISCONTINUOUS_TITLE if kind == "discontinuous" else "#1d1d1f"
        titles.append(
            f"<span style='color:{colour}'>{html.escape(metric)} {better}</span><br><sub>{KIND_LABEL.get(kind, kind)}</sub>"
        )
    # the grid (axis domains, subplot titles) from Plotly; traces, shapes and axes added as dicts
    layout = copy.deepcopy(_subplot_grid(nrows, ncols, tuple(titles)))
    families = sorted(map(str, curves["family"].unique()))
    styles = {f: family_style(i) for i, f in enumerate(families)}
    shown: set[str] = set()
    floors = floors or {}
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = list(layout.get("annotations", ()))
    pred_by_family = (
        {str(f): g.sort_values("scale") for f, g in predictions.groupby("family", sort=True)}
        if predictions is not None and len(predictions)
        else {}
    )
    for k, (metric, kind) in enumerate(metrics):
        suffix = "" if k == 0 else str(k + 1)  # make_subplots numbers the axes row by row
        xref, yref = f"x{suffix}", f"y{suffix}"
        sub = by_metric[metric]
        for fam, g in sub.groupby("family", sort=True):
            colour, symbol = styles[str(fam)]
            trace = point_trace(
                g, name=str(fam), colour=colour, symbol=symbol, showlegend=str(fam) not in shown, metric=f"{metric}"
            )
            data.append(dict(trace, xaxis=xref, yaxis=yref))
            shown.add(str(fam))
        if metric == "exact_match":
            for fam, g in pred_by_family.items():
                if fam not in styles:
                    continue
                colour = styles[fam][0]
                band = band_trace(
                    g["scale"],
                    g["predicted_low"],
                    g["predicted_high"],
                    colour=colour,
                    legendgroup=fam,
                    name=f"{fam} predicted",
                )
                line = line_trace(
                    g["scale"],
                    g["predicted_exact_match"],
                    name=f"{fam}: predicted from {g['source'].iloc[0]}",
                    colour=colour,
                    legendgroup=fam,
                    showlegend=False,
                    dash="dash",
                    width=1.3,
                    hover="%{fullData.name}<br>scale %{x:.4g}<br>predicted %{y:.4g}<extra></extra>",
                )
                data.extend(dict(t, xaxis=xref, yaxis=yref) for t in (band, line))
        values = pd.concat([sub["value"], sub["ci_low"], sub["ci_high"]]).to_numpy(dtype=float)
        natural = natural_range(kind, values)
        yaxis: dict[str, Any] = dict(AXIS_STYLE)
        if is_log_metric(metric):
            yaxis["type"] = "log"
        elif natural is not None:
            yaxis["range"] = list(padded(*natural, share=0.03))
        for level in floors.get(metric, ()):
            # what fig.add_hline(row=, col=) adds: a line across the panel and its label
            shapes.append(
                dict(
                    type="line",
                    xref=f"{xref} domain",
                    yref=yref,
                    x0=0,
                    x1=1,
                    y0=float(level),
                    y1=float(level),
                    line=dict(color="#555", width=1, dash="dot"),
                )
            )
            annotations.append(
                dict(
                    text=f"floor {level:g}",
                    xref=f"{xref} domain",
                    yref=yref,
                    x=1,
                    y=float(level),
                    xanchor="right",
                    yanchor="top",
                    showarrow=False,
                    font=dict(size=10, color="#555"),
                )
            )
        layout[f"yaxis{suffix}"] = dict(layout.get(f"yaxis{suffix}", {}), **yaxis)
        layout[f"xaxis{suffix}"] = dict(
            layout.get(f"xaxis{suffix}", {}), **AXIS_STYLE, type="log", title=dict(text=scale_label, standoff=4)
        )
    for k in range(n, nrows * ncols):  # empty cells of the last row keep the shared look
        suffix = str(k + 1)
        for axis in (f"xaxis{suffix}", f"yaxis{suffix}"):
            layout[axis] = dict(layout.get(axis, {}), **AXIS_STYLE)
    layout.update(
        layout_style(height=chart_height(nrows, len(families)), legend_title="family (click: hide/show)", title=title),
        shapes=shapes,
        annotations=annotations,
    )
    return {"data": data, "layout": layout}


def length_chart(
    lengths: pd.DataFrame, *, anchor: str, caption: str, title: str | None = None, search: str = ""
) -> Chart:
    """Exact match and token edit distance by target length, a trace per model (click to hide),
    observed points with intervals and the theory (``p̂^L``, ``L(1-p̂)``) dashed: the rows of
    ``lengths.csv`` (or the demo's prediction 3) of one family and task. ``search``: what the
    page's search box matches to show the chart (e.g. its family and task)."""
    p3 = lengths
    x_col = "params" if "params" in p3.columns else "scale"
    models = list(dict.fromkeys(p3.sort_values([x_col, "model"])["model"]))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[
            "exact match by target length (log; dashed p̂^L)",
            "token edit distance by target length (dashed L(1-p̂))",
        ],
        horizontal_spacing=0.1,
    )
    for i, model in enumerate(models):
        g = p3[p3["model"] == model].sort_values("length")
        colour, symbol = family_style(i)
        # exact match (zeros left out of its log axis) and token edit distance, each with its theory line
        panels = (
            ("exact_match", "exact match", f"{model}: p̂^L", True),
            ("token_edit_distance", "token edit distance", f"{model}: L(1-p̂)", False),
        )
        for col, (key, label, theory, legend) in enumerate(panels, start=1):
            observed_values = g[f"observed_{key}"]
            points = pd.DataFrame(
                {
                    "model": g["model"],
                    "length": g["length"],
                    "value": observed_values.where(observed_values > 0) if key == "exact_match" else observed_values,
                    "ci_low": g[f"{key}_low"],
                    "ci_high": g[f"{key}_high"],
                    "n_samples": g["n_samples"],
                }
            )
            fig.add_trace(
                point_trace(
                    points,
                    name=str(model),
                    colour=colour,
                    symbol=symbol,
                    x="length",
                    metric=label,
                    mode="markers",
                    showlegend=legend,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                line_trace(
                    g["length"],
                    g[f"predicted_{key}"],
                    name=theory,
                    colour=colour,
                    legendgroup=str(model),
                    showlegend=False,
                    dash="dash",
                    width=1.2,
                ),
                row=1,
                col=col,
            )
    observed = p3["observed_exact_match"][p3["observed_exact_match"] > 0]
    low = math.log10(max(float(observed.min()) / 5, 1e-6)) if len(observed) else -6.0
    fig.update_yaxes(type="log", range=[low, math.log10(1.5)], title_text="exact match (log)", row=1, col=1)
    fig.update_yaxes(title_text="token edit distance", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="target length L (tokens)", dtick=1)
    style_figure(fig, height=420, legend_title="model (click: hide/show)", title=title)
    return Chart(anchor=anchor, figure=fig, caption=caption, task=search)


# ----------------------------------------------------------------------------- page

_CSS = """
.search{position:sticky;top:0;z-index:10;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}
.search input{font-size:1em;padding:.35em .6em;width:26em;max-width:90%;border:1px solid #bbb;border-radius:4px}
.search .status{color:#666;font-size:.85em;margin-left:1em}
figure.chart{margin:1.2em 0;border-top:1px solid #eee;padding-top:.4em}
figure.chart .plot{width:100%;min-height:200px}
td details{font-size:.85em}td details table{font-size:1em;margin:.3em 0}
tr.target{outline:2px solid #1f5fbf}
"""

# Draws each chart when it first scrolls near the viewport (a page of 24 charts opens at once),
# and runs the search box: charts by task or family, rows of searchable tables by their text.
_SCRIPT = """
(function () {
  var charts = Array.prototype.slice.call(document.querySelectorAll("figure.chart"));
  var query = "";
  function spec(fig) { return JSON.parse(document.getElementById(fig.id + "-spec").textContent); }
  function draw(fig) {
    if (fig.dataset.drawn || typeof Plotly === "undefined") { return; }
    var s = spec(fig);
    fig.dataset.drawn = "1";
    Plotly.newPlot(fig.querySelector(".plot"), s.data, s.layout, {responsive: true, displaylogo: false});
    filterChart(fig);
  }
  function familiesOf(fig) { return JSON.parse(fig.dataset.families || "[]"); }
  function filterChart(fig) {
    var task = (fig.dataset.task || "").toLowerCase();
    var fams = familiesOf(fig);
    var wanted = null;  // null: every family
    var show = true;
    if (query && task.indexOf(query) < 0) {
      wanted = fams.filter(function (f) { return f.toLowerCase().indexOf(query) >= 0; });
      show = wanted.length > 0 || (fams.length === 0 && task.indexOf(query) >= 0);
    }
    fig.style.display = show ? "" : "none";
    if (!fig.dataset.drawn || fams.length === 0) { return; }
    var div = fig.querySelector(".plot");
    var visible = div.data.map(function (t) {
      if (wanted === null || !t.legendgroup || fams.indexOf(t.legendgroup) < 0) { return true; }
      return wanted.indexOf(t.legendgroup) >= 0 ? true : "legendonly";
    });
    if (query || fig.dataset.filtered) {
      Plotly.restyle(div, {visible: visible});
      fig.dataset.filtered = query ? "1" : "";
    }
  }
  function filterRows() {
    var rows = document.querySelectorAll("tr[data-search]");
    var shown = 0;
    rows.forEach(function (tr) {
      var ok = !query || tr.dataset.search.toLowerCase().indexOf(query) >= 0;
      tr.style.display = ok ? "" : "none";
      if (ok) { shown += 1; }
    });
    // a collapsed group opens while a search finds rows in it, and closes again after
    document.querySelectorAll("details.collapsed").forEach(function (d) {
      var hit = query && Array.prototype.some.call(d.querySelectorAll("tr[data-search]"), function (tr) {
        return tr.style.display !== "none";
      });
      if (hit) { d.open = true; d.dataset.searchOpened = "1"; }
      else if (d.dataset.searchOpened) { d.open = false; d.dataset.searchOpened = ""; }
    });
    return [shown, rows.length];
  }
  function apply() {
    charts.forEach(filterChart);
    var r = filterRows();
    var figs = charts.filter(function (f) { return f.style.display !== "none"; }).length;
    var status = document.getElementById("search-status");
    if (status) {
      status.textContent = query ? (figs + " of " + charts.length + " figures, " + r[0] + " of " + r[1] + " table rows") : "";
    }
  }
  var box = document.getElementById("search");
  if (box) { box.addEventListener("input", function () { query = box.value.trim().toLowerCase(); apply(); }); }
  if ("IntersectionObserver" in window) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { draw(e.target); seen.unobserve(e.target); } });
    }, {rootMargin: "600px"});
    charts.forEach(function (c) { seen.observe(c); });
  } else { charts.forEach(draw); }
  // a link to a chart draws it before the browser scrolls there
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
    if (!a) { return; }
    var target = document.getElementById(a.getAttribute("href").slice(1));
    if (target && target.classList.contains("chart")) { target.style.display = ""; draw(target); }
  });
  window.mirageCharts = {draw: draw, charts: charts};
})();
"""


def figure_json(figure: go.Figure | dict[str, Any]) -> str:
    """The figure (a graph object or its JSON dict) as compact JSON (Plotly's own encoder: NaN as
    null) that can sit inside a ``<script>`` element (no ``</`` to end it early)."""
    if isinstance(figure, dict):
        text = pio.json.to_json_plotly(figure, pretty=False, engine="json")
    else:
        text = figure.to_json(validate=False, pretty=False, engine="json")
    return str(text).replace("</", "<\\/")


def chart_html(chart: Chart) -> str:
    """A chart's element: an empty plot area, its figure as JSON (drawn by the page's script), and
    its caption; ``data-task``/``data-families`` are what the search box matches."""
    payload = figure_json(chart.figure)
    cap = f"<figcaption>{html.escape(chart.caption)}</figcaption>" if chart.caption else ""
    return (
        f'<figure class="chart" id="{html.escape(chart.anchor, quote=True)}" '
        f'data-task="{html.escape(chart.task, quote=True)}" '
        f'data-families="{html.escape(json.dumps(list(chart.families)), quote=True)}">'
        f'<div class="plot"></div><script type="application/json" id="{html.escape(chart.anchor, quote=True)}-spec">'
        f"{payload}</script>{cap}</figure>"
    )


def search_box(placeholder: str = "filter tasks and families") -> str:
    """The page's search box (filters charts and the rows of searchable tables)."""
    return (
        f'<div class="search"><input id="search" type="search" placeholder="{html.escape(placeholder, quote=True)}" '
        'aria-label="filter"><span class="status" id="search-status"></span></div>'
    )


def interactive_document(title: str, body_html: str, *, plotly: bool = True) -> str:
    """A complete page: ``body_html`` with its charts, plotly.js inlined (``plotly=False`` for a page
    with no chart, e.g. ``--static``: the search box still works) and the page's script."""
    scripts = ([plotly_js()] if plotly else []) + [_SCRIPT]
    return html_document(title, body_html, css=_CSS, scripts=scripts)
