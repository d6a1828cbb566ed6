"""Figures and the self-contained HTML report.

Figures are matplotlib (Agg backend, no display needed); the report embeds them as base64 PNG
so ``report.html`` opens anywhere with no network access.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import VERDICT_EXPLAINED, VERDICT_INSUFFICIENT, VERDICT_NONE, VERDICT_NOT_EXPLAINED, VERDICTS

KIND_LABEL = {"discontinuous": "discontinuous", "nonlinear": "nonlinear", "linear": "continuous (linear)",
              "unknown": "unknown kind"}
VERDICT_COLOUR = {  # keyed by the verdict strings themselves, so a renamed verdict cannot lose its colour
    VERDICT_EXPLAINED: "#1b7f3b",
    VERDICT_NOT_EXPLAINED: "#b3261e",
    VERDICT_NONE: "#555555",
    VERDICT_INSUFFICIENT: "#8a6d00",
}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); the one place that sets it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_to_data_uri(fig, dpi: int = 110) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f4f4f6}
td:last-child{font-size:.85em;color:#444;max-width:28em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:600}.muted{color:#666}.box{background:#f7f7f9;border-left:4px solid #888;
padding:.6em 1em;margin:1em 0}img{max-width:100%;height:auto}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
"""


def html_document(title: str, body_html: str) -> str:
    """A complete, self-contained HTML page (inline CSS, no external resources)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body_html}\n</body></html>\n"
    )


def table_html(frame: pd.DataFrame, max_rows: int = 60, float_format: str = "{:.4g}") -> str:
    """A small HTML table; numbers right-aligned, long tables truncated with a note."""
    shown = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for _, row in shown.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                txt = "inf" if v == math.inf else "-inf" if v == -math.inf else ("" if pd.isna(v) else float_format.format(v))
                cells.append(f"<td class=\"num\">{txt}</td>")
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                cells.append(f"<td class=\"num\">{v}</td>")
            else:
                missing = v is None or (np.ndim(v) == 0 and pd.isna(v))
                cells.append(f"<td>{html.escape('' if missing else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = "" if len(frame) <= max_rows else f"<p class=\"muted\">{len(frame) - max_rows} more rows in the CSV file.</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


# ----------------------------------------------------------------------------- figures

_KIND_ORDER = {"discontinuous": 0, "nonlinear": 1, "linear": 2, "unknown": 3}


def plot_task(curves: pd.DataFrame, title: str, verdicts: pd.DataFrame | None = None,
              overlay=None):
    """One figure for one (task, shots): a panel per metric, discontinuous metrics first.

    Each family is one colour; points are models, bands the confidence intervals, the x axis
    the scale on a log axis. ``overlay(ax, metric, family_colours)`` may draw predictions.
    """
    plt = pyplot()
    metrics = (curves[["metric", "metric_kind"]].drop_duplicates()
               .assign(order=lambda f: f["metric_kind"].map(_KIND_ORDER).fillna(9))
               .sort_values(["order", "metric"]))
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
        ax.set_title(f"{metric} {better}\n{KIND_LABEL.get(kind, kind)}", fontsize=9,
                     color="#b3261e" if kind == "discontinuous" else "#1d1d1f")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, which="both", lw=0.5)
        ax.set_xlabel("scale", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if len(families) > 1 or n > 1:
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(families), 6), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def close(fig) -> None:
    pyplot().close(fig)


def prediction_overlay(predictions: pd.DataFrame | None):
    """An overlay factory for :func:`write_task_figures`: on the exact-match panel, the exact
    match predicted from the continuous metric (dashed) with its bootstrap band."""
    if predictions is None or predictions.empty:
        return None
    curves = predictions[predictions["row_kind"] == "curve"]

    def factory(task, shots):
        sel = curves[curves["task"] == task]
        if "shots" in sel.columns and not pd.isna(shots):
            sel = sel[sel["shots"] == shots]
        if sel.empty:
            return None

        def overlay(ax, metric, colours):
            if metric != "exact_match":
                return
            for fam, g in sel.groupby("family"):
                g = g.sort_values("scale")
                colour = colours.get(fam, "k")
                ax.plot(g["scale"], g["predicted_exact_match"], "--", color=colour, lw=1.2, alpha=0.9,
                        label=f"{fam}: predicted from {g['source'].iloc[0]}")
                ax.fill_between(g["scale"], g["predicted_low"], g["predicted_high"], color=colour, alpha=0.08, lw=0)
        return overlay

    return factory


# ----------------------------------------------------------------------------- analysis report


def _figure_groups(result, max_figures: int, featured=()) -> list[tuple]:
    """(task, shots) groups to draw: featured tasks, then the most informative."""
    curves = result.curves
    groups = curves[["task", "shots"]].drop_duplicates()
    prio = {}
    rank = {name: i for i, name in enumerate(VERDICTS)}  # decided verdicts first
    for row in result.verdicts.itertuples(index=False):
        key = (row.task, row.shots)
        prio[key] = min(prio.get(key, (9, 0)), (rank.get(row.verdict, 4), 0))
    em = result.emergence.copy()
    em["abs"] = em["emergence_score"].abs()
    best = em.groupby(["task", "shots"], dropna=False)["abs"].max()
    keyed = []
    for task, shots in groups.itertuples(index=False):
        key = (task, shots)
        b = best.get(key, 0.0)
        first = -1 if task in featured else prio.get(key, (5, 0))[0]
        keyed.append((first, -float(b if np.isfinite(b) else 1e300), str(task), key))
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [k[-1] for k in keyed[:max_figures]]


def write_task_figures(result, fig_dir: Path, max_figures: int = 24, progress: bool = False, overlay_factory=None,
                       featured=()):
    """Write one PNG per chosen (task, shots); return [(path, (task, shots))]."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    groups = _figure_groups(result, max_figures, featured)
    iterator = groups
    if progress and groups:
        from rich.progress import track

        iterator = track(groups, description="figures")
    for task, shots in iterator:
        sel = (result.curves["task"] == task) & (
            result.curves["shots"].isna() if pd.isna(shots) else (result.curves["shots"] == shots))
        sub = result.curves[sel]
        title = f"{task}" + ("" if pd.isna(shots) else f" ({int(shots)}-shot)")
        overlay = overlay_factory(task, shots) if overlay_factory else None
        fig = plot_task(sub, title, overlay=overlay)
        from .fsio import slug

        name = slug(title) + ".png"  # readable + hash of the title: tasks αβ and γδ get two files
        path = fig_dir / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        close(fig)
        out.append((path, (task, shots)))
    return out


_RULE_HTML = """
<p>For each family and task with both a discontinuous metric (exact match, multiple-choice grade,
acc) and a continuous one of the same outputs, mirage tests the paper's claim in three steps
(details, assumptions and known failure cases: <code>docs/verdicts.md</code>).</p>
<ol>
<li><b>Does the discontinuous curve look emergent?</b> It must stay near its smallest model's
value over at least {flat:.0%} of the log-scale range (within {band:.0%} of its rise), then rise
by at least {effect:g} with the best model's interval above the smallest model's. Without
intervals (no stderr, no n_samples, no records) nothing can be resolved: <i>insufficient
evidence</i>.</li>
<li><b>Is the per-token loss smooth?</b> The continuous metric on its per-token loss scale
(cross-entropy, log perplexity, the per-token loss of the option margins) is fitted as a power law
in scale, with an irreducible term, weighted by each model's uncertainty plus a {tol:.0%} scatter,
and tested against a break between neighbouring models (a step down, or a kink after which it falls
faster), with the search over positions accounted for (level {level:g}).</li>
<li><b>Does the smooth law imply the discontinuous curve?</b> From records, exact match is predicted
from the smooth law with each item's own target length; the outputs are compared with the model's
own probabilities of the target (outputs at chance while the loss improves are a threshold in the
model). From score tables, one effective length is fitted.</li>
</ol>
<p><b>explained by metric</b>: looks emergent, and the per-token loss is smooth and implies it.
<b>not explained by metric choice</b>: looks emergent, but the loss breaks, the outputs lag, or the
smooth law does not reproduce the curve. <b>no apparent emergence</b>: the curve does not look
emergent. <b>insufficient evidence</b>: no intervals, fewer than {min_models} models or
{min_samples} samples per model, or no continuous metric on a per-token loss scale. Every test is
in <code>evidence.csv</code>.</p>
<p class="muted">The emergence score of Srivastava et al. (2022) is reported for every curve
(emergence.csv) but does not decide verdicts: with few models it ranks smooth power laws above
sharp curves.</p>
"""


def write_analysis_report(path: Path, result, figures, title: str = "mirage analysis") -> None:
    from .fsio import write_text

    s = result.summary
    counts = s["verdict_counts"]
    parts = [f"<div class=\"box\"><p>{s['n_curves']} curves: {s['n_families']} families, {s['n_models']} models, "
             f"{s['n_tasks']} tasks, {s['n_metrics']} metrics"
             + (f", from {s['n_records']:,} sample records" if s["has_records"] else "") + ".</p>"]
    if len(result.verdicts):
        parts.append("<p>Verdicts: " + ", ".join(
            f"<span class=\"verdict\" style=\"color:{VERDICT_COLOUR.get(k, '#000')}\">{v} {html.escape(k)}</span>"
            for k, v in counts.items() if v) + ".</p>")
    else:
        parts.append("<p>No family and task has both a discontinuous and a continuous metric, so no verdicts; "
                     "emergence scores are below.</p>")
    if s["unknown_metrics"]:
        parts.append("<p>Metrics of unknown kind (pass <code>--metric-kind NAME=KIND</code>): "
                     + html.escape(", ".join(s["unknown_metrics"])) + "</p>")
    parts.append("</div>")
    if len(result.verdicts):
        v = result.verdicts.copy()  # already in VERDICTS order: decided ones first
        v["metrics (discontinuous / continuous)"] = v["discontinuous_metric"] + " / " + v["continuous_metric"]
        v["break p"] = v["break_p_value"]
        cols = ["family", "task", "shots", "verdict", "metrics (discontinuous / continuous)", "n_models",
                "rise", "flat_share", "break p", "transform_check", "reason"]
        parts.append("<h2>Verdicts</h2>" + table_html(v[cols], max_rows=40))
    st = s["settings"]
    parts.append("<h2>How verdicts are reached</h2>" + _RULE_HTML.format(
        flat=st["min_flat_share"], band=st["floor_band"], effect=st["min_effect"], tol=st["loss_tolerance"],
        level=st["test_level"], min_models=st["min_models"], min_samples=st["min_samples"]))
    if figures:
        no_ci = result.curves["ci_method"].eq("none")
        bands = (f"bands are {st['level']:.0%} confidence intervals" if not no_ci.any() else
                 f"bands are {st['level']:.0%} confidence intervals where the inputs allow one; "
                 f"{int(no_ci.sum())} of {len(no_ci)} points have none (no stderr, n_samples or records) and are "
                 "drawn without a band")
        parts.append("<h2>Curves</h2><p class=\"muted\">Discontinuous metrics in red titles; "
                     f"{bands}; x is <code>{html.escape(str(s['scale_column']))}</code> on a log axis.</p>")
        for fig_path, (task, shots) in figures:
            uri = "data:image/png;base64," + base64.b64encode(Path(fig_path).read_bytes()).decode("ascii")
            cap = html.escape(f"{task}" + ("" if pd.isna(shots) else f", {int(shots)}-shot"))
            parts.append(f"<figure><img alt=\"{cap}\" src=\"{uri}\"><figcaption>{cap}</figcaption></figure>")
    parts.extend(_prediction_sections(result))
    parts.extend(_resolution_section(result))
    em = result.emergence.copy()
    if len(em):
        em["_abs"] = em["emergence_score"].abs()
        em = em.sort_values("_abs", ascending=False)
        cols = ["family", "task", "shots", "metric", "metric_kind", "n_models", "emergence_score", "flat_then_jump", "jump_share"]
        parts.append("<h2>Highest emergence scores</h2>" + table_html(em[cols], max_rows=25))
    write_text(path, html_document(title, "\n".join(parts)))


def _prediction_sections(result) -> list[str]:
    """Report sections for the exact-match prediction and the target-length analysis."""
    if result.predictions is None or result.predictions.empty:
        return []
    from .theory import plot_length_analysis

    out = ["<h2>Exact match predicted from the continuous metric</h2>",
           "<p>A power law <code>CE(N) = (N/c)^α</code> fitted to each family's per-token loss (from the "
           "continuous metric of the same outputs), pushed through <code>exp(-L·CE)</code> with each sample's "
           "target length, predicts every model's exact match. Where the observed interval overlaps the "
           "predicted band, the sudden-looking curve was predictable from the smooth one.</p>"]
    fits = result.prediction_fits
    if fits is not None and len(fits):
        cols = [c for c in ("family", "task", "shots", "source", "alpha", "alpha_low", "alpha_high", "c",
                            "n_models", "note") if c in fits.columns]
        out.append(table_html(fits[cols], max_rows=20))
    rows = result.predictions[result.predictions["row_kind"] == "model"]
    cols = [c for c in ("family", "task", "shots", "model", "scale", "observed_exact_match", "observed_low",
                        "observed_high", "predicted_exact_match", "predicted_low", "predicted_high", "consistent")
            if c in rows.columns]
    out.append(table_html(rows[cols], max_rows=40))
    lengths = result.lengths
    if lengths is not None and lengths["length"].nunique() >= 2:
        out.append("<h2>Target length</h2><p>At a fixed model the theory says exact match falls geometrically "
                   "with target length (<code>p̂^L</code>, dashed) while token edit distance grows linearly "
                   "(<code>L(1-p̂)</code>).</p>")
        plt = pyplot()
        keys = [k for k in ("family", "task", "shots") if k in lengths.columns]
        for key, g in list(lengths.groupby(keys, dropna=False))[:6]:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
            plot_length_analysis(axes[0], g)
            observed = g["observed_exact_match"][g["observed_exact_match"] > 0]
            if len(observed):  # predictions for tiny models would stretch the axis to 1e-20
                axes[0].set_ylim(bottom=max(float(observed.min()) / 5, 1e-6), top=1.5)
            for i, (model, m) in enumerate(g.groupby("model", sort=False)):
                m = m.sort_values("length")
                axes[1].plot(m["length"], m["observed_token_edit_distance"], "o", color=f"C{i % 10}", ms=4)
                axes[1].plot(m["length"], m["predicted_token_edit_distance"], "--", color=f"C{i % 10}", lw=1)
            axes[1].set_xlabel("target length (tokens)")
            axes[1].set_ylabel("token edit distance (dashed: L(1-p̂))")
            axes[0].legend(fontsize=7, frameon=False)
            title = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if not pd.isna(k))
            fig.suptitle(title, fontsize=10)
            fig.tight_layout()
            out.append(f"<figure><img alt=\"{html.escape(title)}\" src=\"{figure_to_data_uri(fig)}\">"
                       f"<figcaption>{html.escape(title)}: exact match and token edit distance by target length"
                       "</figcaption></figure>")
            close(fig)
    return out


def _resolution_section(result) -> list[str]:
    res = result.resolution
    if res is None or res.empty:
        return []
    above = int(res["above_chance"].sum())
    out = ["<h2>Better statistics: are the small models above chance?</h2>",
           f"<p>{above} of {len(res)} model × metric points have a Wilson lower bound above chance. "
           "<code>samples_needed</code> is how many test items would show the model above chance with 80% power "
           "(using the exact match predicted from the continuous metric where there is one, so a model with "
           "0 of n right still gets an answer); <code>resolution</code> is 1/(items × target length).</p>"]
    cols = ["family", "task", "shots", "model", "metric", "n_samples", "value", "ci_low", "ci_high", "chance",
            "above_chance", "rate_used", "rate_source", "samples_needed", "resolution"]
    out.append(table_html(res.sort_values(["family", "task", "metric", "scale"])[cols], max_rows=40))
    return out
