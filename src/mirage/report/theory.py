"""The ``mirage theory`` figure (the paper's Figure 2) and report, from a
:class:`~mirage.schema.results.TheoryResult`."""

from __future__ import annotations

import html

from matplotlib.figure import Figure

from ..schema.results import TheoryResult
from .html import html_document, table_html
from .png import data_uri, pyplot


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
    axes[0, 2].legend(fontsize=8, title="target length", title_fontsize=8)
    fig.suptitle(f"CE(N) = (N / {law.c:.3g}) ^ {law.alpha:g}: the metric, not the model, makes the jump", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def theory_report(result: TheoryResult, png: bytes) -> str:
    """The self-contained HTML report of ``mirage theory`` around the figure's ``png`` bytes."""
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
        f'<figure><img alt="theory" src="{uri}"></figure>',
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
    return html_document("mirage theory", "\n".join(body))
