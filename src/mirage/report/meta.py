"""The ``mirage meta`` figures (relative scores per metric, the strongest apparent emergences) and
report, from a :class:`~mirage.schema.results.MetaResult`."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from ..schema.results import MetaResult
from ..schema.vocab import MetricKind
from .html import html_document, table_html
from .interactive import Chart, chart_html, interactive_document, point_trace, style_figure
from .png import pyplot
from .style import display_factor, factor_label, is_log_metric, natural_range, padded

CURVE_KEY = ["family", "task", "shots", "metric"]

_KIND_COLOUR = {
    MetricKind.DISCONTINUOUS.value: "#b3261e",
    MetricKind.NONLINEAR.value: "#e08a00",
    MetricKind.LINEAR.value: "#1f5fbf",
    MetricKind.UNKNOWN.value: "#777777",
}


def plot_score_distribution(emergence: pd.DataFrame, threshold: float, max_metrics: int = 25) -> Figure:
    """Relative emergence score of every scored curve, one row per metric (symlog axis);
    ``inf`` (flat then jump) is drawn at the right edge."""
    plt = pyplot()
    scored = emergence[~emergence["insufficient"]]
    order = scored.groupby("metric")["relative_score"].size().sort_values(ascending=False).head(max_metrics).index
    order = sorted(
        order,
        key=lambda m: (
            -np.nan_to_num(
                scored.loc[scored["metric"] == m, "relative_score"].median(), nan=-1e300, posinf=1e300, neginf=-1e300
            )
        ),
    )
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * max(len(order), 3) + 1.4))
    finite = scored["relative_score"].replace([np.inf, -np.inf], np.nan)
    edge = max(float(np.nanmax(finite.abs())) if finite.notna().any() else 1.0, threshold) * 3
    rng = np.random.default_rng(0)  # jitter only; seeded so the figure is reproducible
    for row, metric in enumerate(order):
        s = scored[scored["metric"] == metric]
        v = s["relative_score"].to_numpy(dtype=float)
        inf = np.isinf(v)
        v = np.where(inf, np.sign(v) * edge, v)
        kind = s["metric_kind"].iloc[0]
        y = row + rng.uniform(-0.25, 0.25, len(v))
        ax.scatter(v[~inf], y[~inf], s=10, alpha=0.6, color=_KIND_COLOUR.get(kind, "#777"))
        ax.scatter(v[inf], y[inf], s=28, marker=">", color=_KIND_COLOUR.get(kind, "#777"))
        if len(v):  # median over every curve, inf counted at the edge where it is drawn
            ax.plot([np.median(v)] * 2, [row - 0.35, row + 0.35], color="black", lw=1.2)
    ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set_xscale("symlog", linthresh=1.0)
    left = min(float(np.nanmin(np.where(np.isinf(finite), np.nan, finite))) if finite.notna().any() else 0.0, 0.0)
    ax.set_xlim(left * 1.5 - 0.5, edge * 1.6)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("relative emergence score (1 = even steps; ▶ at the edge = inf, flat then jump)", fontsize=9)
    ax.set_title(f"Emergence scores per metric (threshold {threshold:g} dashed)", fontsize=10)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=k)
        for k, c in _KIND_COLOUR.items()
        if k in set(scored["metric_kind"])
    ]
    if handles:
        ax.legend(
            handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0
        )  # beside the rows, not over them
    ax.grid(alpha=0.25, axis="x")
    fig.tight_layout()
    return fig


def _partner(pairs: pd.DataFrame, row: Any) -> str | None:
    """The continuous metric paired with a chosen sharp curve, or None."""
    sel = pairs[
        (pairs["family"] == row.family)
        & (pairs["task"] == row.task)
        & (pairs["sharp_metric"] == row.metric)
        & ((pairs["shots"] == row.shots) if not pd.isna(row.shots) else pairs["shots"].isna())
    ]
    return str(sel["continuous_metric"].iloc[0]) if len(sel) else None


def _curve(index: pd.DataFrame, key: tuple[Any, ...]) -> pd.DataFrame:
    return index.loc[key].sort_values("scale").reset_index()


def _panel_title(row: Any) -> str:
    score = "inf" if math.isinf(row.relative_score) else f"{row.relative_score:.1f}"
    shots = "" if pd.isna(row.shots) else f", {int(row.shots)}-shot"
    return f"#{row.rank} {row.family} · {row.task}{shots}\n{row.metric} (score {score})"


def plot_strongest(curves: pd.DataFrame, emergence: pd.DataFrame, pairs: pd.DataFrame, top: int = 12) -> Figure | None:
    """The strongest apparent emergences, two per row: each sharp curve on its metric's whole range
    (0-1 for rates), beside it the continuous metric of the same family and task on its own axis
    (not rescaled), where one exists."""
    plt = pyplot()
    chosen = emergence[emergence["apparent_emergence"]].head(top)
    if chosen.empty:
        return None
    n = len(chosen)
    per_row = min(2, n)
    nrows = int(math.ceil(n / per_row))
    fig, axes = plt.subplots(nrows, 2 * per_row, figsize=(3.3 * 2 * per_row, 2.8 * nrows), squeeze=False)
    index = curves.set_index(CURVE_KEY).sort_index()
    xfactor = display_factor(curves["scale"])  # scales near 1.7e308 overflow the log axis's transform
    for i, row in enumerate(chosen.itertuples(index=False)):
        ax, ax2 = axes[i // per_row, 2 * (i % per_row)], axes[i // per_row, 2 * (i % per_row) + 1]
        g = _curve(index, (row.family, row.task, row.shots, row.metric))
        factor = display_factor(g["value"])  # near 1.7e308 matplotlib's axis arithmetic overflows
        values = g["value"].to_numpy(dtype=float) / factor
        ax.plot(g["scale"] / xfactor, values, "o-", color=_KIND_COLOUR.get(row.metric_kind, "#777"), ms=4)
        natural = natural_range(str(row.metric_kind), values)
        if natural is not None:
            ax.set_ylim(*padded(*natural, share=0.03))
        ax.set_title(_panel_title(row) + factor_label(factor), fontsize=8)
        partner = _partner(pairs, row)
        if partner is None:
            ax2.axis("off")
            ax2.text(
                0.5,
                0.5,
                "no continuous metric\nof the same outputs",
                ha="center",
                va="center",
                fontsize=8,
                color="#666",
            )
        else:
            pg = _curve(index, (row.family, row.task, row.shots, partner))
            factor = display_factor(pg["value"])
            ax2.plot(pg["scale"] / xfactor, pg["value"] / factor, "s-", color=_KIND_COLOUR["linear"], ms=3, lw=1)
            better = "↑" if bool(pg["higher_is_better"].iloc[0]) else "↓"
            ax2.set_title(
                f"same outputs: {partner} {better}{factor_label(factor)}\n(continuous, its own axis)", fontsize=8
            )
            if is_log_metric(partner):
                ax2.set_yscale("log")
        for a in (ax, ax2):
            if a.axison:
                a.set_xscale("log")
                a.xaxis.set_minor_locator(plt.NullLocator())  # minor log ticks cost most of the drawing time
                a.tick_params(labelsize=7)
                a.grid(alpha=0.25, lw=0.5)
                if xfactor != 1.0:
                    a.set_xlabel("scale" + factor_label(xfactor), fontsize=7)
    for ax in axes.ravel()[2 * n :]:
        ax.axis("off")
    # fixed spacing: tight_layout costs seconds per figure of this size
    height = 2.8 * nrows  # inches: two-line titles need 0.6 in above the top row, tick labels 0.4 in below
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.4 / height, top=1 - 0.6 / height, wspace=0.35, hspace=0.75)
    return fig


def strongest_chart(curves: pd.DataFrame, emergence: pd.DataFrame, pairs: pd.DataFrame, top: int = 12) -> Chart | None:
    """The strongest apparent emergences as one interactive chart, a row each: the sharp curve on
    its whole range, beside it the continuous metric of the same family and task on its own axis;
    hover a point for model, scale, value, interval and n."""
    chosen = emergence[emergence["apparent_emergence"]].head(top)
    if chosen.empty:
        return None
    index = curves.set_index(CURVE_KEY).sort_index()
    titles = []
    rows = list(chosen.itertuples(index=False))
    partners = [_partner(pairs, row) for row in rows]
    for row, partner in zip(rows, partners):
        titles.append(html.escape(_panel_title(row)).replace("\n", "<br>"))
        titles.append(html.escape(f"same outputs: {partner} (its own axis)") if partner else "no continuous metric")
    fig = make_subplots(
        rows=len(rows),
        cols=2,
        subplot_titles=titles,
        horizontal_spacing=0.12,
        vertical_spacing=min(0.08, 0.5 / len(rows)),
    )
    families: list[str] = []
    for i, (row, partner) in enumerate(zip(rows, partners)):
        g = _curve(index, (row.family, row.task, row.shots, row.metric))
        fig.add_trace(
            point_trace(
                g,
                name=f"#{row.rank} {row.family}",
                colour=_KIND_COLOUR.get(row.metric_kind, "#777"),
                metric=str(row.metric),
                showlegend=False,
            ),
            row=i + 1,
            col=1,
        )
        natural = natural_range(str(row.metric_kind), g["value"].to_numpy(dtype=float))
        if natural is not None:
            fig.update_yaxes(range=list(padded(*natural, share=0.03)), row=i + 1, col=1)
        if partner is not None:
            pg = _curve(index, (row.family, row.task, row.shots, partner))
            fig.add_trace(
                point_trace(
                    pg,
                    name=f"#{row.rank} {row.family}",
                    colour=_KIND_COLOUR["linear"],
                    metric=partner,
                    symbol="square",
                    showlegend=False,
                ),
                row=i + 1,
                col=2,
            )
            if is_log_metric(partner):
                fig.update_yaxes(type="log", row=i + 1, col=2)
        families.append(str(row.family))
    fig.update_xaxes(type="log")
    style_figure(fig, height=260 * len(rows) + 80, legend_title=None)
    fig.update_layout(showlegend=False)
    return Chart(
        anchor="strongest",
        figure=fig,
        caption="Strongest apparent emergences: left, the sharp curve on its metric's whole range; right, a "
        "continuous metric of the same family, task and outputs on its own axis (not rescaled). Hover a point "
        "for its model, value, interval and n.",
        task=" ".join(sorted({str(r.task) for r in rows})),
        families=(),
    )


_DEFINITIONS_HTML = """
<p><b>Emergence score</b> (Srivastava et al. 2022): <code>sign(argmax y − argmin y) · (max y − min y) /
sqrt(median (y<sub>i</sub> − y<sub>i−1</sub>)²)</code> over a curve's models sorted by scale, on the values as reported.
A curve flat at one value and then jumping has a zero median step and scores <code>inf</code>.</p>
<p><b>Relative score</b>: the same score on the scale where improvements compare (perplexity-like metrics as
per-token probability <code>1/ppl</code>, <code>exp(mean log p)</code>), signed so improvement is positive,
divided by <code>n_models − 1</code>: a curve improving in equal steps scores 1.
A curve is an <b>apparent emergence</b> when its relative score is at least the threshold
(<b>{threshold:g}</b>; <code>--threshold</code>) and it passes the verdicts' evidence gate: it stays near its
smallest model's value over part of the log-scale range before it rises (a curve that saturates from a high
start does not), a discontinuous metric rises by at least the minimum effect, and the intervals resolve the rise
(<code>evidence</code>: resolved; curves without intervals, such as BIG-bench score files, are marked
<i>no intervals</i> and counted apart in <code>n_apparent_resolved</code>). Each kind's share of the apparent
emergences sits beside its share of all curves (<code>share_of_curves</code>), its base rate. Curves of fewer
than 3 models are not scored.</p>
<p><b>Pairs</b>: an apparently emergent discontinuous (or nonlinear) curve and a continuous curve of the same
family, task and shots; <i>only under sharp metric</i> when the continuous one is not an apparent emergence.
<b>Re-scoring</b> (curves from per-sample records only): each apparent emergence re-scored with the Brier
score (multiple choice) or token edit distance / target log-probability (generation).</p>
"""


def meta_report(result: MetaResult, figures: Mapping[str, str], title: str, strongest: Chart | None = None) -> str:
    """The self-contained HTML report of a meta-analysis; ``figures``: file name -> data URI;
    ``strongest``: the interactive chart of the strongest apparent emergences (shown instead of
    their PNG when given)."""
    s = result.summary
    parts = [
        f'<div class="box"><p>{s["n_curves"]} curves ({s["n_scored"]} scored) from {s["n_families"]} families, '
        f"{s['n_tasks']} tasks, {s['n_metrics']} metrics. <b>{s['n_apparent']}</b> apparent emergences at threshold "
        f"{s['threshold']:g} ({s['n_flat_then_jump']} scored curves flat then jumping)"
    ]
    if s["n_apparent"]:
        parts.append(" — by kind: " + ", ".join(f"{html.escape(k)} {v}" for k, v in s["apparent_by_kind"].items()))
    parts.append(".</p>")
    if s["rescored"]:
        parts.append(
            f"<p>Re-scored with a continuous metric of the same samples: <b>{s['remaining_after_rescore']} of "
            f"{s['rescored']}</b> apparent emergences remain.</p>"
        )
    parts.append("</div><h2>Definitions</h2>" + _DEFINITIONS_HTML.format(threshold=s["threshold"]))
    bm = result.by_metric
    parts.append(
        "<h2>Where apparent emergence lives</h2>"
        + table_html(bm[bm["level"] == "metric_kind"].drop(columns="level"))
        + table_html(bm[bm["level"] == "metric"].drop(columns="level"), max_rows=40)
    )
    for name, caption in (
        ("emergence_distribution.png", "Distribution of relative emergence scores per metric"),
        (
            "strongest.png",
            "Strongest apparent emergences: each sharp curve on its whole range, beside it (blue) a continuous "
            "metric of the same family and task on its own axis",
        ),
    ):
        if name == "strongest.png" and strongest is not None:
            parts.append(chart_html(strongest))
        elif name in figures:
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="{figures[name]}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    cols = [
        "rank",
        "family",
        "task",
        "shots",
        "metric",
        "metric_kind",
        "n_models",
        "emergence_score",
        "relative_score",
        "flat_then_jump",
    ]
    parts.append(
        "<h2>Strongest apparent emergences</h2>"
        + table_html(result.emergence[result.emergence["apparent_emergence"]][cols], max_rows=30)
    )
    if len(result.pairs):
        only = result.pairs[result.pairs["only_under_sharp_metric"].astype(bool)]
        parts.append(
            f"<h2>Emergent under a sharp metric only ({len(only)} of {len(result.pairs)} pairs)</h2>"
            + table_html(only.drop(columns=["origin"]), max_rows=40)
        )
    parts.append("<h2>Re-scoring from per-sample records</h2>")
    if len(result.rescore):
        parts.append(table_html(result.rescore, max_rows=40))
    else:
        parts.append(
            '<p class="muted">No apparent emergence comes from per-sample records, so nothing could be '
            "re-scored (score tables hold only the metrics they were published with).</p>"
        )
    body = "\n".join(parts)
    return html_document(title, body) if strongest is None else interactive_document(title, body)
