"""The "three predictions" page of ``mirage demo``: its figures, its sentences and the page
itself, from the tables of :func:`mirage.analysis.story.story_tables`; and the one paragraph the
demo prints (:func:`story_summary`). The text on the page states measured numbers; when exact
match does not look emergent, the page says so.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from plotly.subplots import make_subplots

from ..schema.results import ForecastResult, StoryTables
from .figures import exact_match_errorbars
from .forecast import forecast_charts, forecast_figure
from .html import html_document, table_html
from .interactive import Chart, chart_html, interactive_document, length_chart, point_trace, style_figure
from .png import close, data_uri, encode_png, pyplot

STORY_METRICS = ("exact_match", "token_edit_distance", "target_mean_logprob")
METRIC_LABEL = {
    "exact_match": "exact match",
    "token_edit_distance": "token edit distance",
    "target_mean_logprob": "mean per-token log-probability",
}
HEADINGS = (
    "Prediction 1: metric choice",
    "Prediction 2: better statistics",
    "Prediction 3: target length",
    "Prediction 4: forecast",
)
# what prediction 1's heading adds, by verdict: the page's claim is the verdict's
PREDICTION1_CLAIM = {
    "explained by metric": "the metric makes the jump",
    "not explained by metric choice": "the jump is not the metric's doing",
    "no apparent emergence": "no jump for the metric to explain",
    "insufficient evidence": "the data cannot tell",
}
# Okabe & Ito's colour-blind safe palette (yellow left out: unreadable on white), then greys
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def prediction1_heading(tables: "StoryTables") -> str:
    """Prediction 1's heading: its claim is the verdict's."""
    if len(tables.verdict):
        claim = PREDICTION1_CLAIM.get(str(tables.verdict["verdict"].iloc[0]))
        if claim:
            return f"{HEADINGS[0]}: {claim}"
    return f"{HEADINGS[0]}: no verdict"


# ----------------------------------------------------------------------------- figures


def _p1_row(tables: StoryTables, metric: str) -> pd.Series | None:
    p1 = tables.prediction1
    sel = p1[p1["metric"] == metric]
    return sel.iloc[0] if len(sel) else None


def _model_styles(models: list[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per model; past 8 models the markers shift so no two models look alike."""
    return {
        m: (PALETTE[i % len(PALETTE)], MARKERS[(i + i // len(PALETTE)) % len(MARKERS)]) for i, m in enumerate(models)
    }


def _figure_prediction1(plt: Any, tables: StoryTables) -> Figure | None:
    metrics = [m for m in STORY_METRICS if m in set(tables.curves["metric"])] if len(tables.curves) else []
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.4, 3.2), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics):
        g = tables.curves[tables.curves["metric"] == metric].sort_values("scale")
        x = g["scale"].to_numpy(dtype=float)
        y, lo, hi = (g[c].to_numpy(dtype=float) for c in ("value", "ci_low", "ci_high"))
        ylabel = METRIC_LABEL[metric]
        if metric == "target_mean_logprob":
            y, lo, hi = np.exp(y), np.exp(lo), np.exp(hi)
            ylabel = "per-token probability\nexp(mean log p)"
        colour = PALETTE[1] if metric == "exact_match" else PALETTE[0]
        ax.plot(x, y, "o-", color=colour, ms=4, lw=1.5)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0, label=f"{tables.level:.0%} interval")
        row = _p1_row(tables, metric)
        arrow = "↑" if row is not None and bool(row["higher_is_better"]) else "↓"
        title = f"{METRIC_LABEL[metric]} {arrow}"
        if row is not None:
            title += f"\njump share {row['jump_share']:.2f}, emergence {_num(row['emergence_score'], '.1f')}"
        ax.set_title(title, fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("parameters", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="major", lw=0.5)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    if handles:  # beside the last panel, never over a curve
        axes.ravel()[-1].legend(
            handles, labels, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0
        )
    fig.suptitle(f"{tables.family}: {tables.main_task}, one point per model", fontsize=10)
    fig.tight_layout()
    return fig


def _figure_prediction2(plt: Any, tables: StoryTables) -> Figure | None:
    p2 = tables.prediction2
    if p2.empty:
        return None
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.6, 1]})
    x = p2["params"].to_numpy(dtype=float)
    sets = (("standard", 0.92, PALETTE[0], "o"), ("large", 1.08, PALETTE[1], "s"))
    positive = []
    for name, dodge, colour, marker in sets:
        y = p2[f"exact_match_{name}"].to_numpy(dtype=float)
        lo, hi = p2[f"ci_low_{name}"].to_numpy(dtype=float), p2[f"ci_high_{name}"].to_numpy(dtype=float)
        n = p2[f"n_{name}"].dropna()
        task = tables.main_task if name == "standard" else tables.large_task
        label = f"{task} (n = {int(n.iloc[0]) if len(n) else '?'})"
        ax.errorbar(
            x * dodge,
            y,
            yerr=np.clip(np.vstack([y - lo, hi - y]), 0, None),
            fmt=marker,
            color=colour,
            ms=5,
            capsize=3,
            lw=1.2,
            label=label,
        )
        positive += [v for v in np.concatenate([y, hi]) if np.isfinite(v) and v > 0]
    linthresh = 10.0 ** math.floor(math.log10(min(positive))) if positive else 1e-3
    ax.set_yscale("symlog", linthresh=min(max(linthresh, 1e-5), 1e-2))
    ax.set_ylim(bottom=0.0, top=min(1.0, 2 * max(positive)) if positive else 1.0)
    ax.axhline(0.0, color="#444444", lw=1, ls=":", label="zero")
    ax.set_xscale("log")
    ax.set_xlabel("parameters", fontsize=8)
    ax.set_ylabel("exact match (symlog)", fontsize=8)
    ax.set_title(f"small models: exact match with {tables.level:.0%} Wilson intervals", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2)  # below its panel
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, lw=0.5)
    ratio = p2["ci_width_ratio"].to_numpy(dtype=float)
    ax2.plot(x, ratio, "o-", color=PALETTE[2], ms=5)
    ax2.axhline(1 / math.sqrt(10), color="#444444", ls="--", lw=1, label="1/√10")
    ax2.axhline(1.0, color="#999999", ls=":", lw=1, label="no change")
    ax2.set_xscale("log")
    ax2.set_ylim(0, max(1.1, float(np.nanmax(ratio)) * 1.1 if np.isfinite(ratio).any() else 1.1))
    ax2.set_xlabel("parameters", fontsize=8)
    ax2.set_ylabel("interval width, large / standard", fontsize=8)
    ax2.set_title("how much the intervals shrink", fontsize=9)
    ax2.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax2.tick_params(labelsize=7)
    ax2.grid(alpha=0.3, lw=0.5)
    for a in (ax, ax2):  # a span of under a decade gets labelled minor ticks that overlap
        a.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    return fig


def _figure_prediction3(plt: Any, tables: StoryTables) -> Figure | None:
    p3 = tables.prediction3
    if p3.empty or p3["length"].nunique() < 2:
        return None
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    models = list(dict.fromkeys(p3.sort_values(["params", "model"])["model"]))
    styles = _model_styles(models)
    observed_pos = []
    for model in models:
        g = p3[p3["model"] == model].sort_values("length")
        colour, marker = styles[model]
        pos = g[g["observed_exact_match"] > 0]
        if len(pos):
            exact_match_errorbars(ax, pos, fmt=marker, color=colour, lw=1)
            observed_pos += list(pos["observed_exact_match"])
        ax.plot(g["length"], g["predicted_exact_match"], "--", color=colour, lw=1)
        t = g["observed_token_edit_distance"].to_numpy(dtype=float)
        terr = np.vstack(
            [
                t - g["token_edit_distance_low"].to_numpy(dtype=float),
                g["token_edit_distance_high"].to_numpy(dtype=float) - t,
            ]
        )
        ax2.errorbar(
            g["length"],
            t,
            yerr=np.clip(np.nan_to_num(terr), 0, None),
            fmt=marker,
            color=colour,
            ms=4,
            capsize=2,
            lw=1,
            label=str(model),
        )
        ax2.plot(g["length"], g["predicted_token_edit_distance"], "--", color=colour, lw=1)
    ax.set_yscale("log")
    if observed_pos:  # theory for tiny models would stretch the axis to 1e-20
        ax.set_ylim(bottom=max(min(observed_pos) / 5, 1e-6), top=1.5)
    ax.set_xlabel("target length L (tokens)", fontsize=8)
    ax.set_ylabel("exact match (log; dashed p̂^L)", fontsize=8)
    ax.set_title("exact match by target length", fontsize=9)
    ax2.set_xlabel("target length L (tokens)", fontsize=8)
    ax2.set_ylabel("token edit distance (dashed L(1-p̂))", fontsize=8)
    ax2.set_title("token edit distance by target length", fontsize=9)
    for a in (ax, ax2):
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3, lw=0.5)
        a.xaxis.get_major_locator().set_params(integer=True)
    ax2.legend(
        fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5), title="model", title_fontsize=7
    )
    fig.tight_layout()
    return fig


def _main_forecast(tables: StoryTables) -> ForecastResult | None:
    """The forecast of the main task's exact match alone (None when no forecast was made)."""
    f = tables.forecast
    if f is None or not len(tables.prediction4_fit):
        return None

    def one(frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return frame
        keep = (frame["task"] == tables.main_task) & (frame["metric"] == "exact_match")
        if tables.family is not None:
            keep &= frame["family"] == tables.family
        return frame[keep]

    return ForecastResult(one(f.forecast), one(f.crossings), one(f.fits), one(f.backtests), f.summary)


def _figure_prediction4(plt: Any, tables: StoryTables) -> Figure | None:
    """The forecast of the main task's exact match (its one panel of :func:`forecast_figure`)."""
    sub = _main_forecast(tables)
    return None if sub is None else forecast_figure(sub, max_panels=1)


def story_figures(tables: StoryTables) -> dict[str, Figure]:
    """Figures keyed "prediction1" to "prediction4" (a key is absent when its table is empty). The
    caller closes them (:func:`mirage.report.close`)."""
    plt = pyplot()
    figures = {}
    try:
        for key, make in (
            ("prediction1", _figure_prediction1),
            ("prediction2", _figure_prediction2),
            ("prediction3", _figure_prediction3),
            ("prediction4", _figure_prediction4),
        ):
            fig = make(plt, tables)
            if fig is not None:
                figures[key] = fig
    except BaseException:
        for fig in figures.values():
            plt.close(fig)
        raise
    return figures


# ----------------------------------------------------------------------------- interactive charts


def _chart_prediction1(tables: StoryTables) -> Chart | None:
    metrics = [m for m in STORY_METRICS if m in set(tables.curves["metric"])] if len(tables.curves) else []
    if not metrics:
        return None
    titles = []
    for metric in metrics:
        row = _p1_row(tables, metric)
        arrow = "↑" if row is not None and bool(row["higher_is_better"]) else "↓"
        sub = (
            f"<br><sub>jump share {row['jump_share']:.2f}, emergence {_num(row['emergence_score'], '.1f')}</sub>"
            if row is not None
            else ""
        )
        titles.append(f"{METRIC_LABEL[metric]} {arrow}{sub}")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=titles, horizontal_spacing=0.08)
    for i, metric in enumerate(metrics):
        g = tables.curves[tables.curves["metric"] == metric].sort_values("scale").copy()
        if metric == "target_mean_logprob":  # shown as the per-token probability exp(mean log p)
            for c in ("value", "ci_low", "ci_high"):
                g[c] = np.exp(g[c].to_numpy(dtype=float))
        colour = PALETTE[1] if metric == "exact_match" else PALETTE[0]
        fig.add_trace(
            point_trace(g, name=METRIC_LABEL[metric], colour=colour, metric=metric, showlegend=False), row=1, col=i + 1
        )
        if metric in ("exact_match", "target_mean_logprob"):  # rates: their whole 0-1 range
            fig.update_yaxes(range=[-0.03, 1.03], row=1, col=i + 1)
        fig.update_yaxes(
            title_text="per-token probability exp(mean log p)"
            if metric == "target_mean_logprob"
            else METRIC_LABEL[metric],
            row=1,
            col=i + 1,
        )
    fig.update_xaxes(type="log", title_text="parameters")
    style_figure(
        fig,
        height=380,
        legend_title=None,
        title=html.escape(f"{tables.family}: {tables.main_task}, one point per model"),
    )
    return Chart(
        anchor="prediction1",
        figure=fig,
        caption="Exact match, token edit distance and per-token probability against parameters, with "
        f"{tables.level:.0%} intervals; hover a point for its model, value, interval and n.",
    )


def _chart_prediction2(tables: StoryTables) -> Chart | None:
    p2 = tables.prediction2
    if p2.empty:
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        subplot_titles=[
            f"small models: exact match with {tables.level:.0%} Wilson intervals",
            "how much the intervals shrink",
        ],
        horizontal_spacing=0.1,
    )
    for name, colour, symbol, dodge in (
        ("standard", PALETTE[0], "circle", 0.95),
        ("large", PALETTE[1], "square", 1.05),
    ):
        n = p2[f"n_{name}"].dropna()
        task = tables.main_task if name == "standard" else tables.large_task
        frame = pd.DataFrame(
            {
                "model": p2["model"],
                "params": p2["params"],
                "value": p2[f"exact_match_{name}"],
                "ci_low": p2[f"ci_low_{name}"],
                "ci_high": p2[f"ci_high_{name}"],
                "n_samples": p2[f"n_{name}"],
            }
        )
        fig.add_trace(
            point_trace(
                frame,
                name=f"{task} (n = {int(n.iloc[0]) if len(n) else '?'})",
                colour=colour,
                symbol=symbol,
                x="params",
                metric="exact match",
                mode="markers",
                dodge=dodge,
            ),
            row=1,
            col=1,
        )
    ratio = pd.DataFrame({"model": p2["model"], "params": p2["params"], "value": p2["ci_width_ratio"]})
    fig.add_trace(
        point_trace(
            ratio, name="width ratio large / standard", colour=PALETTE[2], x="params", metric="interval width ratio"
        ),
        row=1,
        col=2,
    )
    fig.add_hline(
        y=1 / math.sqrt(10), line=dict(color="#444", dash="dash", width=1), annotation_text="1/√10", row=1, col=2
    )
    fig.add_hline(y=1.0, line=dict(color="#999", dash="dot", width=1), annotation_text="no change", row=1, col=2)
    fig.add_hline(y=0.0, line=dict(color="#444", dash="dot", width=1), row=1, col=1)
    fig.update_xaxes(type="log", title_text="parameters")
    fig.update_yaxes(title_text="exact match", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="interval width, large / standard", rangemode="tozero", row=1, col=2)
    style_figure(fig, height=400, legend_title="test set (click: hide/show)")
    return Chart(
        anchor="prediction2",
        figure=fig,
        caption=f"Exact match of the small models on {tables.main_task} and {tables.large_task} (the two sets side "
        "by side at each model; the axis starts at zero, dotted; zoom in with the mouse), and the ratio of "
        "interval widths.",
    )


def _chart_prediction3(tables: StoryTables) -> Chart | None:
    p3 = tables.prediction3
    if p3.empty or p3["length"].nunique() < 2:
        return None
    return length_chart(
        p3,
        anchor="prediction3",
        caption="By target length, per model (same colour in both panels): observed points with intervals, theory "
        "dashed. The exact-match axis is logarithmic, starting a fifth below the smallest observed rate.",
    )


def _chart_prediction4(tables: StoryTables) -> Chart | None:
    sub = _main_forecast(tables)
    charts = [] if sub is None else forecast_charts(sub, max_panels=1, anchor="prediction4")
    return charts[0] if charts else None


def story_charts(tables: StoryTables) -> dict[str, Chart]:
    """Interactive charts keyed "prediction1" to "prediction4" (absent when empty)."""
    out = {}
    for key, make in (
        ("prediction1", _chart_prediction1),
        ("prediction2", _chart_prediction2),
        ("prediction3", _chart_prediction3),
        ("prediction4", _chart_prediction4),
    ):
        chart = make(tables)
        if chart is not None:
            out[key] = chart
    return out


# ----------------------------------------------------------------------------- text


def _num(v: Any, spec: str = ".3g") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "n/a"
    if math.isinf(f):
        return "∞" if f > 0 else "-∞"
    return format(f, spec)


def _rule_text(tables: StoryTables) -> str:
    return (
        "a curve looks emergent when it stays near its smallest model's value over a stretch of the log-scale "
        "range and then rises by a resolved, material amount; the metric explains it when the per-token loss of "
        f"the same outputs is a smooth power law that reproduces it (tests at the {tables.level:.0%} level and "
        "below; docs/verdicts.md)"
    )


def prediction1_text(tables: StoryTables) -> str:
    """What prediction 1 measured, in plain sentences (no HTML); its conclusion is the verdict's."""
    p1 = tables.prediction1
    if p1.empty:
        return f"Not measured: the analysis has none of {', '.join(STORY_METRICS)} for task {tables.main_task}."
    em = _p1_row(tables, "exact_match")
    parts = []
    if em is not None:
        parts.append(
            f"Over {int(em['n_models'])} models, exact match goes from {_num(em['value_first'])} (smallest "
            f"model) to {_num(em['value_last'])} (largest); its largest step carries {em['jump_share']:.2f} "
            f"of that range (emergence score {_num(em['emergence_score'], '.1f')})."
        )
    others = []
    for metric in ("token_edit_distance", "target_mean_logprob"):
        r = _p1_row(tables, metric)
        if r is None:
            continue
        text = (
            f"{METRIC_LABEL[metric]} {_num(r['value_first'])} → {_num(r['value_last'])}, largest step "
            f"{r['jump_share']:.2f} of its range (emergence score {_num(r['emergence_score'], '.1f')})"
        )
        if r["verdict_test"]:
            text += f'; test "{r["verdict_test"]}": {r["verdict_outcome"]} ({_p_text(r["p_value"])})'
        others.append(text)
    if others:
        parts.append("Of the same outputs: " + "; ".join(others) + ".")
    if len(tables.verdict):
        v = tables.verdict.iloc[0]
        verdict = str(v["verdict"])
        if verdict == "explained by metric":
            parts.append(
                "Exact match looks emergent, while the per-token loss of the same outputs follows a smooth "
                "power law that reproduces it: here the metric makes the jump."
            )
        elif verdict == "not explained by metric choice":
            parts.append("Exact match looks emergent, and the metric does not explain it: the jump is in the models.")
        elif verdict == "no apparent emergence":
            parts.append(
                "Exact match does NOT look emergent by mirage's rule: in this family there is no sudden jump "
                "in exact match for the metric to explain."
            )
        else:
            parts.append("The data cannot tell whether the metric makes a jump.")
        parts.append(f"Verdict: {verdict} ({v['reason']}).")
    else:
        parts.append("No verdict: the analysis has no exact-match verdict for this task.")
    return " ".join(parts)


def _p_text(p: float) -> str:
    try:
        f = float(p)
    except (TypeError, ValueError):
        return "p = n/a"
    if not math.isfinite(f):
        return "p = n/a"
    return "p < 1e-12" if f < 1e-12 else f"p = {f:.2g}"


def prediction2_text(tables: StoryTables) -> str:
    """What prediction 2 measured, in plain sentences (no HTML)."""
    p2 = tables.prediction2
    if p2.empty:
        return (
            f"Not run: the records hold no task {tables.large_task!r} for this family, so there is no larger "
            "test set to compare with."
        )
    k = len(p2)
    n_std = int(p2["n_standard"].median()) if p2["n_standard"].notna().any() else 0
    n_large = int(p2["n_large"].median())
    a, b = int(p2["above_zero_standard"].sum()), int(p2["above_zero_large"].sum())
    ratio = p2["ci_width_ratio"].replace([np.inf, -np.inf], np.nan).dropna()
    first = p2.iloc[0]
    hits_std = (
        int(round(float(first["exact_match_standard"]) * float(first["n_standard"])))
        if pd.notna(first["exact_match_standard"])
        else None
    )
    hits_large = int(round(float(first["exact_match_large"]) * float(first["n_large"])))
    parts = [
        f"The {k} smallest models were evaluated on {n_std} problems of {tables.main_task} and on {n_large} "
        f"of {tables.large_task}. Exact match with a {tables.level:.0%} Wilson interval above zero: {a} of {k} "
        f"models on the standard set, {b} of {k} on the larger set."
    ]
    if len(ratio):
        parts.append(
            f"The intervals on the larger set are {ratio.median():.2f} times as wide as on the standard set "
            f"(median over models; range {ratio.min():.2f}-{ratio.max():.2f}; 1/√(n_large/n_standard) = "
            f"{math.sqrt(n_std / n_large) if n_large else math.nan:.2f} for rates well away from zero)."
        )
    parts.append(
        f"The smallest model ({first['model']}) got {hits_std if hits_std is not None else 'n/a'} of "
        f"{int(first['n_standard']) if pd.notna(first['n_standard']) else 'n/a'} and {hits_large} of "
        f"{int(first['n_large'])} right."
    )
    need = p2["samples_needed"]
    if need.notna().any():
        parts.append(
            "Test items needed to show each model above zero with 80% power (from its predicted rate): "
            + ", ".join(f"{m} {_num(v, '.0f')}" for m, v in zip(p2["model"], need))
            + "."
        )
    return " ".join(parts)


def _p3_means(tables: StoryTables) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    m = tables.prediction3_models
    fit = m[m["log_em_slope_observed"].notna()]
    ted = m[m["ted_slope_observed"].notna()]
    return m, fit, ted


def _slope_agreement(models: pd.DataFrame, prefix: str) -> tuple[pd.Series, int]:
    """Per model |observed - theory| slope, and how many models agree within two standard errors."""
    diff = (models[f"{prefix}_observed"] - models[f"{prefix}_theory"]).abs()
    return diff, int((diff <= 2 * models[f"{prefix}_se"]).sum())


def prediction3_text(tables: StoryTables) -> str:
    """What prediction 3 measured, in plain sentences (no HTML)."""
    m, fit, ted = _p3_means(tables)
    if tables.prediction3.empty or m.empty:
        return (
            "Not measured: the analysis has no by-length table for this task (it needs records with exact match "
            "and a continuous metric of the same outputs)."
        )
    src = m["source"].iloc[0]
    how = (
        "exp of its mean per-token log-probability"
        if src == "target_mean_logprob"
        else "1 - its per-token error rate"
        if src == "token_edit_distance"
        else str(src)
    )
    lengths = sorted(tables.prediction3["length"].unique())
    parts = [
        f"Task {tables.length_task}: each model's test items are grouped by target length L = {lengths[0]}..{lengths[-1]} tokens; p̂ is "
        f"the model's per-token probability ({how}, over all its items). Theory with independent token errors: "
        "exact match p̂^L (log exact match falls with slope log p̂) and token edit distance L(1-p̂) (slope 1-p̂)."
    ]
    if len(fit):
        diff, within = _slope_agreement(fit, "log_em_slope")
        parts.append(
            f"For the {len(fit)} of {len(m)} models with exact match above zero at two or more lengths, the "
            f"fitted slope of log exact match on L averages {fit['log_em_slope_observed'].mean():.3f} against "
            f"{fit['log_em_slope_theory'].mean():.3f} from p̂ (mean absolute difference {diff.mean():.3f}; "
            f"{within} of {len(fit)} within two standard errors). Lengths where a model got nothing right "
            "are left out of its fit, which flattens the slopes of weak models."
        )
    else:
        parts.append("No model has exact match above zero at two or more lengths, so no exact-match slope was fitted.")
    if len(ted):
        diff, within = _slope_agreement(ted, "ted_slope")
        parts.append(
            f"Token edit distance rises by {ted['ted_slope_observed'].mean():.3f} per token on average "
            f"(least squares over {len(ted)} models) against {ted['ted_slope_theory'].mean():.3f} = mean 1-p̂ "
            f"(mean absolute difference {diff.mean():.3f}; {within} of {len(ted)} within two standard "
            "errors)."
        )
    return " ".join(parts)


def prediction4_text(tables: StoryTables) -> str:
    """What the forecast's back-test measured, in plain sentences (no HTML)."""
    fit, bt = tables.prediction4_fit, tables.prediction4
    if fit is None or not len(fit):
        return "Not run: no forecast was made for this task."
    f = fit.iloc[0]
    if f["status"] == "declined":
        return f"The forecast was declined: {f['reason']}."
    n_fit, held = int(f["n_models"]), len(bt)
    parts = [
        f"The smooth per-token law of the {n_fit} smaller models (up to {_num(f['scale_max_fit'])} parameters; "
        f"alpha {_num(f['alpha'])}) was pushed through exact match's transform and extrapolated to the {held} "
        "larger ones."
    ]
    if pd.notna(f["crossing_scale"]):
        parts.append(
            f"It forecasts exact match to reach {_num(f['crossing_level'])} at {_num(f['crossing_scale'])} parameters "
            f"(band {_num(f['crossing_scale_low'])} to {_num(f['crossing_scale_high'])})."
        )
    else:
        parts.append(f"It does not forecast exact match to reach {_num(f['crossing_level'])}: {f['crossing_note']}.")
    if held:
        observed = bt["crossing_observed"].iloc[0]
        covered = int(bt["covered"].astype("boolean").fillna(False).astype(bool).sum())
        if pd.notna(observed):
            ratio = bt["crossing_ratio"].iloc[0]
            parts.append(
                f"The family reached it at {_num(observed)}"
                + (f" (forecast / observed: {_num(ratio)})." if pd.notna(ratio) else ".")
            )
        band = tables.forecast.summary["settings"]["band"] if tables.forecast is not None else math.nan
        parts.append(f"The {_num(100 * band, '.0f')} % band covers {covered} of {held} held-out models.")
    if f["status"] == "unreliable":
        parts.append(f"The forecast is flagged unreliable: {f['reason']}.")
    elif held and covered == held:
        parts.append("The jump was forecast from the smaller models: the metric made it predictable.")
    return " ".join(parts)


def story_summary(tables: StoryTables) -> str:
    """One paragraph for the terminal with the key numbers of the three predictions."""
    parts = []
    p1 = tables.prediction1
    if len(p1):
        bits = ", ".join(
            f"{METRIC_LABEL[r.metric]} {r.jump_share:.2f} (emergence {_num(r.emergence_score, '.1f')})"
            for r in p1.itertuples(index=False)
        )
        verdict = tables.verdict["verdict"].iloc[0] if len(tables.verdict) else "none"
        parts.append(f"Prediction 1 (largest-step share of the range): {bits}; verdict: {verdict}.")
    else:
        parts.append("Prediction 1: not measured.")
    p2 = tables.prediction2
    if len(p2):
        ratio = p2["ci_width_ratio"].replace([np.inf, -np.inf], np.nan).dropna()
        above = int(p2["above_zero_standard"].sum())
        parts.append(
            f"Prediction 2: of {len(p2)} small models, {above} {'is' if above == 1 else 'are'} above zero "
            f"with {int(p2['n_standard'].median())} problems and {int(p2['above_zero_large'].sum())} with "
            f"{int(p2['n_large'].median())}" + (f" (intervals {ratio.median():.2f}x as wide)." if len(ratio) else ".")
        )
    else:
        parts.append(f"Prediction 2: not run (no {tables.large_task} records).")
    m, fit, ted = _p3_means(tables)
    if len(m) and (len(fit) or len(ted)):
        text = "Prediction 3:"
        if len(fit):
            text += (
                f" log exact match falls by {-fit['log_em_slope_observed'].mean():.3f} per target token "
                f"(theory -log p̂ {-fit['log_em_slope_theory'].mean():.3f}, {len(fit)} models);"
            )
        if len(ted):
            text += (
                f" token edit distance rises by {ted['ted_slope_observed'].mean():.3f} per token "
                f"(theory 1-p̂ {ted['ted_slope_theory'].mean():.3f})."
            )
        parts.append(text.rstrip(";") + ("" if text.endswith(".") else "."))
    else:
        parts.append("Prediction 3: not measured.")
    fit, bt = tables.prediction4_fit, tables.prediction4
    if fit is not None and len(fit) and len(bt):
        f = fit.iloc[0]
        covered = int(bt["covered"].astype("boolean").fillna(False).astype(bool).sum())
        ratio = bt["crossing_ratio"].iloc[0]
        parts.append(
            f"Prediction 4: forecast from the {int(f['n_models'])} smaller models, the band covers {covered} of "
            f"{len(bt)} larger ones"
            + (f", crossing 0.5 at {_num(ratio)}x the observed scale" if pd.notna(ratio) else "")
            + f" ({f['status']})."
        )
    return " ".join(parts)


# ----------------------------------------------------------------------------- page


def _p1_display(tables: StoryTables) -> pd.DataFrame:
    p1 = tables.prediction1.copy()
    p1["metric"] = p1["metric"].map(lambda m: METRIC_LABEL.get(m, m))
    p1["higher_is_better"] = p1["higher_is_better"].map(str)
    return p1.drop(columns=["family", "task"])


def _bools_to_str(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map(str)
    return out


def _family_section(tables: StoryTables, family_table: pd.DataFrame | None) -> str:
    if family_table is not None and len(family_table):
        if "model" not in family_table.columns and "name" in family_table.columns:  # TrainedModel.name
            family_table = family_table.rename(columns={"name": "model"})
        wanted = [c for c in ("model", "params", "train_tokens", "final_loss") if c in family_table.columns]
        shown = family_table[wanted] if wanted else family_table
        shown = shown.sort_values("params", kind="stable") if "params" in shown.columns else shown
    else:
        shown = tables.models
    return table_html(shown, max_rows=40) if len(shown) else ""


def _figure_html(uri: str, caption: str) -> str:
    cap = html.escape(caption)
    return f'<figure><img src="{uri}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def story_page(
    tables: StoryTables,
    *,
    family_table: pd.DataFrame | None = None,
    title: str = "mirage demo",
    intro_html: str = "",
    analysis_link: str | None = "analysis/report.html",
    static: bool = False,
) -> str:
    """The three-predictions page: one self-contained HTML document with interactive charts
    (plotly.js inlined), or with ``static`` its figures embedded as PNG data URIs.

    ``family_table``: the trained family (columns ``model`` (or ``name``), ``params``,
    ``train_tokens``, ``final_loss`` are shown where present; all columns if none of them is).
    Without it the page lists the models, their parameters and test items from the curves.
    ``intro_html`` is inserted as given (trusted HTML). ``analysis_link``: a relative href to the
    full analysis report, or None for no link.
    """
    main_task, large_task = tables.main_task, tables.large_task
    charts = {} if static else story_charts(tables)
    uris: dict[str, str] = {}
    if static:
        figures = story_figures(tables)
        try:
            uris = {k: data_uri(encode_png(f, dpi=110)) for k, f in figures.items()}
        finally:
            for f in figures.values():
                close(f)

    def figure(key: str, caption: str) -> str | None:
        if key in charts:
            return chart_html(charts[key])
        if key in uris:
            return _figure_html(uris[key], caption)
        return None

    parts = []
    if intro_html:
        parts.append(intro_html)
    em = tables.curves[tables.curves["metric"] == "exact_match"] if len(tables.curves) else pd.DataFrame()
    n_models = int(em["model"].nunique()) if len(em) else 0
    n_items = f"{int(em['n_samples'].median())} held-out problems of " if len(em) else ""
    large = ""
    if len(tables.prediction2):
        large = (
            f"; the {len(tables.prediction2)} smallest also on {int(tables.prediction2['n_large'].median())} "
            f"problems of <code>{html.escape(large_task)}</code>"
        )
    parts.append(
        f"<p>Family <b>{html.escape(str(tables.family))}</b>: {n_models} models evaluated on {n_items}task "
        f"<code>{html.escape(main_task)}</code>{large}. The x axis is parameters. Each section states what "
        "was measured; its numbers are filled in from the table under it.</p>"
    )
    parts.append(_family_section(tables, family_table))
    if analysis_link:
        parts.append(
            f'<p><a href="{html.escape(analysis_link, quote=True)}">Full analysis report</a> '
            "(every metric and task, verdict rules, predictions from the fitted power law).</p>"
        )

    parts.append(f"<h2>{html.escape(prediction1_heading(tables))}</h2>")
    parts.append(f"<p>{html.escape(prediction1_text(tables))}</p>")
    p1 = figure(
        "prediction1",
        f"Exact match, token edit distance and per-token probability against parameters, {tables.level:.0%} interval bands.",
    )
    if p1:
        parts.append(p1)
    if len(tables.prediction1):
        parts.append(table_html(_p1_display(tables)))
    if len(tables.verdict):
        parts.append(table_html(tables.verdict.drop(columns=["family", "task"])))

    parts.append(f"<h2>{html.escape(HEADINGS[1])}</h2>")
    parts.append(f"<p>{html.escape(prediction2_text(tables))}</p>")
    p2 = figure(
        "prediction2",
        f"Exact match of the small models on {main_task} and "
        f"{large_task} (symlog y; dotted line: zero), and the ratio of interval widths.",
    )
    if p2:
        parts.append(p2)
    if len(tables.prediction2):
        parts.append(table_html(_bools_to_str(tables.prediction2.drop(columns=["family"]))))

    parts.append(f"<h2>{html.escape(HEADINGS[2])}</h2>")
    parts.append(f"<p>{html.escape(prediction3_text(tables))}</p>")
    p3 = figure(
        "prediction3",
        "By target length, per model (same colour in both panels): observed points with intervals, theory dashed.",
    )
    if p3:
        parts.append(p3)
    if len(tables.prediction3_models):
        parts.append(table_html(tables.prediction3_models.drop(columns=["family"])))
    if len(tables.prediction3):
        parts.append(
            "<details><summary>Every model × target length</summary>"
            + table_html(tables.prediction3.drop(columns=["family"]), max_rows=200)
            + "</details>"
        )
    if len(tables.prediction4_fit):
        parts.append(f"<h2>{html.escape(HEADINGS[3])}</h2>")
        parts.append(f"<p>{html.escape(prediction4_text(tables))}</p>")
        p4 = figure(
            "prediction4",
            "Exact match forecast from the smaller models (filled points) with its band; the larger "
            "models (hollow) were held out.",
        )
        if p4:
            parts.append(p4)
        if len(tables.prediction4):
            parts.append(table_html(_bools_to_str(tables.prediction4.drop(columns=["family"]))))
    parts.append(
        f'<p class="muted">Verdict rule: {html.escape(_rule_text(tables))}. Intervals: Wilson for '
        f"exact match, bootstrap over items for the continuous metrics, at {tables.level:.0%}.</p>"
    )
    if static:
        return html_document(title, "\n".join(parts))
    return interactive_document(title, "\n".join(parts))
