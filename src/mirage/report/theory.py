"""The ``mirage theory`` figure (the paper's Figure 2) and report, from a
:class:`~mirage.schema.results.TheoryResult`."""

from __future__ import annotations

import html

from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from ..schema.results import TheoryResult
from .html import html_document, table_html
from .interactive import Chart, chart_html, interactive_document, line_trace, style_figure
from .png import data_uri, pyplot

# (column, panel title, one line per target length, a rate on 0-1)
PANELS = (
    ("cross_entropy", "A  per-token cross-entropy", False, False),
    ("p_token", "B  P(one token correct)", False, True),
    ("accuracy", "C  accuracy p^L (nonlinear)", True, True),
    ("token_edit_distance", "D  token edit distance L(1-p) (linear)", True, False),
    ("multiple_choice_grade", "E  multiple-choice grade (discontinuous)", True, True),
    ("brier_score", "F  Brier score (continuous)", True, False),
)


def _viridis(i: int, n: int) -> str:
    """The ``i``-th of ``n`` colours along viridis (as the static figure), as ``#rrggbb``."""
    return str(to_hex(colormaps["viridis"](i / max(n - 1, 1))))


def theory_figure(result: TheoryResult) -> Figure:
    """The paper's Figure 2: loss and p smooth; accuracy and the choice grade sharp; edit distance and Brier smooth."""
    plt = pyplot()
    law, n_choices = result.settings, result.settings.n_choices
    t = result.table
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.2))
    first = t[t["length"] == t["length"].min()]
    lengths = sorted(t["length"].unique())
    panels = [
        ("cross_entropy", "A  per-token cross-entropy", False),
        ("p_token", "B  P(one token correct)", False),
        ("accuracy", "C  accuracy p^L (nonlinear)", True),
        ("token_edit_distance", "D  token edit distance L(1-p) (linear)", True),
        ("multiple_choice_grade", f"E  {n_choices}-option multiple-choice grade (discontinuous), L={lengths[0]}", True),
        ("brier_score", f"F  Brier score (continuous), L={lengths[0]}", True),
    ]
    cmap = plt.get_cmap("viridis")
    for ax, (col, title, per_length) in zip(axes.ravel(), panels):
        if per_length:
            # the option panels use one-token options, as in the paper; longer ones sharpen the softmax
            for i, L in enumerate(lengths if col in ("accuracy", "token_edit_distance") else lengths[:1]):
                g = t[t["length"] == L]
                ax.plot(g["params"], g[col], color=cmap(i / max(len(lengths) - 1, 1)), lw=1.6, label=f"L={L}")
        else:
            ax.plot(first["params"], first[col], color="black", lw=1.6)
        if col == "accuracy":
            for i, row in enumerate(result.crossings.itertuples(index=False)):
                ax.axvline(row[1], color=cmap(i / max(len(lengths) - 1, 1)), ls=":", lw=0.9)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("parameters N")
        ax.grid(alpha=0.25, which="both", lw=0.5)
    # beside the top right panel, not over its curves
    axes[0, 2].legend(
        fontsize=8,
        title="target length",
        title_fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )
    fig.suptitle(f"CE(N) = (N / {law.c:.3g}) ^ {law.alpha:g}: the metric, not the model, makes the jump", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def theory_chart(result: TheoryResult) -> Chart:
    """The paper's Figure 2 as an interactive chart: hover a curve for N and its value; click a
    target length in the legend to hide it in every panel; rates on their whole 0-1 range."""
    law, t = result.settings, result.table
    lengths = sorted(int(v) for v in t["length"].unique())
    first = t[t["length"] == t["length"].min()]
    titles = [p[1] for p in PANELS]
    titles[4] = f"E  {law.n_choices}-option multiple-choice grade (discontinuous), L={lengths[0]}"
    titles[5] = f"F  Brier score (continuous), L={lengths[0]}"
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.16)
    shown: set[int] = set()
    for k, (col, _title, per_length, rate) in enumerate(PANELS):
        row, c = k // 3 + 1, k % 3 + 1
        if per_length:
            # the option panels use one-token options, as in the paper; longer ones sharpen the softmax
            for i, L in enumerate(lengths if col in ("accuracy", "token_edit_distance") else lengths[:1]):
                g = t[t["length"] == L]
                fig.add_trace(
                    line_trace(
                        g["params"],
                        g[col],
                        name=f"L={L}",
                        colour=_viridis(i, len(lengths)),
                        showlegend=L not in shown,
                        hover=f"L={L}<br>N %{{x:.3g}}<br>{col} %{{y:.4g}}<extra></extra>",
                    ),
                    row=row,
                    col=c,
                )
                shown.add(L)
        else:
            fig.add_trace(
                line_trace(
                    first["params"],
                    first[col],
                    name=col,
                    colour="#000000",
                    showlegend=False,
                    hover=f"N %{{x:.3g}}<br>{col} %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=c,
            )
        if col == "accuracy":
            for i, crossing in enumerate(result.crossings.itertuples(index=False)):
                fig.add_vline(
                    x=float(crossing[1]),
                    line=dict(color=_viridis(i, len(lengths)), width=1, dash="dot"),
                    row=row,
                    col=c,
                )
        fig.update_xaxes(type="log", title_text="parameters N", row=row, col=c)
        if rate:
            fig.update_yaxes(range=[-0.03, 1.03], row=row, col=c)
    style_figure(
        fig,
        height=720,
        legend_title="target length (click: hide/show)",
        title=f"CE(N) = (N / {law.c:.3g}) ^ {law.alpha:g}: the metric, not the model, makes the jump",
    )
    return Chart(
        anchor="theory",
        figure=fig,
        caption="Hover a curve for N and its value; click a target length to hide it; dotted: where accuracy "
        "reaches 50 % for each length. Rates (B, C, E) on their whole 0-1 range.",
    )


def theory_report(result: TheoryResult, png: bytes, chart: Chart | None = None) -> str:
    """The self-contained HTML report of ``mirage theory``: the interactive ``chart`` when given,
    else the figure's ``png`` bytes."""
    law, n_choices = result.settings, result.settings.n_choices
    uri = data_uri(png)
    em = result.emergence
    acc = em[em["metric"] == "accuracy"].set_index("task")
    ted = em[em["metric"] == "token_edit_distance"].set_index("task")
    body = [
        f'<div class="box"><p>Per-token loss <code>CE(N) = (N / c)^alpha</code> with c = {law.c:.4g}, '
        f"alpha = {law.alpha:g}; {result.table['params'].nunique()} scales from "
        f"{result.table['params'].min():.3g} to {result.table['params'].max():.3g} parameters; "
        f"{n_choices}-option multiple choice. Defaults are Figure 2 of Schaeffer et al. (2023): "
        "alpha = -0.5, c = 2.0e9.</p></div>",
        chart_html(chart) if chart is not None else f'<figure><img alt="theory" src="{uri}"></figure>',
        "<h2>Longer targets need larger models</h2><p>Parameters at which accuracy p<sup>L</sup> "
        "reaches 50 % and 10 %: <code>c (-log a / L)^(1/alpha)</code>.</p>",
        table_html(result.crossings),
        '<h2>Sharpness of each curve</h2><p class="muted">Sampled at '
        f"{int(em['n_models'].iloc[0])} log-spaced models. <code>jump_share</code>: the largest step between "
        "neighbouring models as a share of the curve's range (1 = one step). Accuracy jump shares: "
        + html.escape(", ".join(f"{k} {v:.2f}" for k, v in acc["jump_share"].items()))
        + "; token edit distance: "
        + html.escape(", ".join(f"{k} {v:.2f}" for k, v in ted["jump_share"].items()))
        + ". The emergence score does not always rank them the same way: with few log-spaced models a "
        "smooth power law can score higher than p<sup>L</sup>.</p>",
        table_html(em, max_rows=200),
    ]
    if chart is None:
        return html_document("mirage theory", "\n".join(body))
    return interactive_document("mirage theory", "\n".join(body))
