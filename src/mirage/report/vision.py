"""The ``mirage vision`` figures and report, from a :class:`~mirage.schema.results.VisionResult`."""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from ..schema.results import VisionExperimentResult, VisionResult
from ..schema.vocab import MetricKind
from .html import html_document, table_html
from .interactive import COLOURS, Chart, chart_html, interactive_document, point_trace, style_figure
from .png import data_uri, pyplot


def _split_metrics(scores: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(continuous, discontinuous) metric names of one experiment's scores."""
    continuous = [
        m
        for m in scores["metric"].unique()
        if (scores.loc[scores.metric == m, "metric_kind"] == MetricKind.LINEAR.value).all()
    ]
    return continuous, [m for m in scores["metric"].unique() if m not in continuous]


def _with_intervals(g: pd.DataFrame) -> pd.DataFrame:
    """The scores with 95 % normal intervals (value ± 1.96 stderr), as the static figure draws."""
    return g.assign(ci_low=g["value"] - 1.96 * g["stderr"], ci_high=g["value"] + 1.96 * g["stderr"])


def vision_chart(result: VisionExperimentResult, emergence: pd.DataFrame) -> Chart:
    """One experiment as an interactive chart: each continuous metric in its panel, every
    discontinuous metric (K or c) together in the last on its whole 0-1 range; hover a point for
    model, parameters, value, interval and n; click a metric in the legend to hide it."""
    scores = result.scores
    continuous, discontinuous = _split_metrics(scores)
    score_of = emergence[emergence.family == result.family].set_index("metric")["oriented_score"]
    titles = [f"{m} (continuous)<br><sub>emergence score {score_of[m]:.3g}</sub>" for m in continuous]
    titles.append(
        f"{'subset accuracy (K)' if result.subset_k else 'reconstruction below c'} (discontinuous)<br>"
        "<sub>legend: emergence score</sub>"
    )
    fig = make_subplots(rows=1, cols=len(continuous) + 1, subplot_titles=titles, horizontal_spacing=0.08)
    for i, metric in enumerate(continuous):
        g = _with_intervals(scores[scores.metric == metric])
        fig.add_trace(
            point_trace(g, name=metric, colour="#1f5fa8", x="params", metric=metric, showlegend=False),
            row=1,
            col=i + 1,
        )
    last = len(continuous) + 1
    for j, metric in enumerate(discontinuous):
        g = _with_intervals(scores[scores.metric == metric])
        fig.add_trace(
            point_trace(
                g,
                name=f"{metric.split('_')[-1]}: {score_of[metric]:.3g}",
                colour=COLOURS[j % len(COLOURS)],
                x="params",
                metric=metric,
            ),
            row=1,
            col=last,
        )
    fig.update_yaxes(range=[-0.03, 1.03], row=1, col=last)
    fig.update_xaxes(type="log", title_text="parameters")
    style_figure(
        fig,
        height=420,
        legend_title="K or c: emergence score (click: hide/show)",
        title=f"{result.family} on {result.task}: same predictions, different metrics",
    )
    return Chart(
        anchor=f"vision-{result.name}",
        figure=fig,
        caption="Left: continuous metrics; right: the discontinuous metric at several K or c, on its whole 0-1 "
        "range. Bars: 95 % normal intervals; hover a point for its model, value, interval and n.",
        task=result.task,
        families=(),
    )


def vision_figure(result: VisionExperimentResult, emergence: pd.DataFrame) -> Figure:
    """Continuous metrics (one panel each) beside all discontinuous ones, against parameters."""
    plt = pyplot()
    scores = result.scores
    continuous, discontinuous = _split_metrics(scores)
    score_of = emergence[emergence.family == result.family].set_index("metric")["oriented_score"]
    fig, axes = plt.subplots(1, len(continuous) + 1, figsize=(4.2 * (len(continuous) + 1), 3.6))
    for ax, metric in zip(axes, continuous):
        g = scores[scores.metric == metric].sort_values("params")
        ax.errorbar(g.params, g.value, yerr=1.96 * g.stderr, marker="o", color="#1f5fa8", capsize=2)
        lower = not bool(g["higher_is_better"].iloc[0])
        ax.set_title(
            f"{metric} (continuous)\nemergence score{' of -' + metric if lower else ''} {score_of[metric]:.3g}",
            fontsize=9,
        )
        ax.set_ylabel(metric)
    ax = axes[-1]
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(discontinuous)))
    for colour, metric in zip(colours, discontinuous):
        g = scores[scores.metric == metric].sort_values("params")
        ax.errorbar(
            g.params,
            g.value,
            yerr=1.96 * g.stderr,
            marker="o",
            color=colour,
            capsize=2,
            label=f"{metric.split('_')[-1]}: {score_of[metric]:.3g}",
        )
    ax.set_title(
        f"{'subset accuracy (K)' if result.subset_k else 'reconstruction below c'} (discontinuous)\n"
        "legend: emergence score",
        fontsize=9,
    )
    ax.set_ylim(-0.03, 1.03)
    # beside the panel, never over the curves (constrained by tight_layout with the figure's right edge)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.family} on {result.task}: same predictions, different metrics", fontsize=10)
    fig.tight_layout()
    return fig


def vision_report(run: VisionResult, figures: Mapping[str, bytes], charts: Mapping[str, Chart] | None = None) -> str:
    """The self-contained HTML report of ``mirage vision``; ``figures``: experiment name -> PNG
    bytes; ``charts``: experiment name -> interactive chart (used instead of the PNGs when given)."""
    quick = run.settings.quick
    parts = [
        "<p>Each family was trained here and every model scored once on held-out images; the continuous "
        "and discontinuous metrics below are computed from the <em>same</em> per-image predictions. "
        "Emergence scores are oriented so that higher means a sharper rise with scale (the score of "
        "&minus;MSE and &minus;cross-entropy). The discontinuous metric compared is fixed in advance per "
        "experiment (largest K, smallest c).</p>",
        f'<p class="muted">{"quick run (short training)" if quick else "full run"}; '
        f"seconds per experiment: {html.escape(str(run.seconds))}</p>",
    ]
    for result in run.experiments:
        comps = [c for c in run.comparisons if c.family == result.family]
        parts.append(f"<h2>{html.escape(result.family)} on {html.escape(result.task)}</h2>")
        for c in comps:
            verdict = "exceeds" if c.discontinuous_exceeds else "does not exceed"
            parts.append(
                f'<p class="box">Emergence score of <b>{html.escape(c.discontinuous_metric)}</b> (discontinuous): '
                f"<b>{c.discontinuous_score:.3g}</b>; of <b>{html.escape(c.continuous_metric)}</b> (continuous): "
                f"<b>{c.continuous_score:.3g}</b>. The discontinuous score <b>{verdict}</b> the continuous one "
                "on the same predictions.</p>"
            )
        table = result.scores.pivot_table(index=["model", "params"], columns="metric", values="value", sort=False)
        parts.append(table_html(table.reset_index().sort_values("params")))
        em = run.emergence[run.emergence.family == result.family]
        parts.append(
            table_html(em[["metric", "metric_kind", "n_models", "emergence_score", "oriented_score", "flat_then_jump"]])
        )
        if charts is not None:
            parts.append(chart_html(charts[result.name]))
        else:
            parts.append(
                f'<figure><img alt="{html.escape(result.family)}" src="{data_uri(figures[result.name])}">'
                "<figcaption>Left: continuous metrics; right: the discontinuous metric at several K or c. "
                "Error bars: 95% normal intervals.</figcaption></figure>"
            )
    title = "mirage vision: inducing emergence with the choice of metric"
    if charts is None:
        return html_document(title, "\n".join(parts))
    return interactive_document(title, "\n".join(parts))
