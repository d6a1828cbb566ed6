"""The ``mirage analyze`` report: one figure per chosen (task, shots) and the self-contained HTML
page, from an :class:`~mirage.schema.results.AnalysisResult`. Rendering only: the writer
(:func:`mirage.io.outputs.write_analysis`) names and writes the files."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import track

from ..schema.results import AnalysisResult
from ..schema.vocab import VERDICT_ORDER, CIMethod, RowKind
from .figures import VERDICT_COLOUR, Overlay, plot_length_analysis, plot_task
from .html import html_document, table_html
from .png import close, data_uri, encode_png, figure_to_data_uri, pyplot

FigureKey = tuple[Any, Any]  # (task, shots)


def _figure_groups(result: AnalysisResult, max_figures: int, featured: Sequence[str] = ()) -> list[FigureKey]:
    """(task, shots) groups to draw: featured tasks, then the most informative."""
    curves = result.curves
    groups = curves[["task", "shots"]].drop_duplicates()
    prio: dict[FigureKey, tuple[int, int]] = {}
    rank = {v.value: i for i, v in enumerate(VERDICT_ORDER)}  # decided verdicts first
    for row in result.verdicts.itertuples(index=False):
        key = (row.task, row.shots)
        prio[key] = min(prio.get(key, (9, 0)), (rank.get(str(row.verdict), 4), 0))
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


def task_figures(
    result: AnalysisResult,
    max_figures: int = 24,
    progress: bool = False,
    overlay_factory: Callable[[Any, Any], Overlay | None] | None = None,
    featured: Sequence[str] = (),
) -> list[tuple[str, FigureKey, bytes]]:
    """One PNG per chosen (task, shots): [(title, (task, shots), png bytes)], most informative first."""
    out = []
    groups = _figure_groups(result, max_figures, featured)
    iterator = track(groups, description="figures") if progress and groups else groups
    for task, shots in iterator:
        sel = (result.curves["task"] == task) & (
            result.curves["shots"].isna() if pd.isna(shots) else (result.curves["shots"] == shots)
        )
        sub = result.curves[sel]
        title = f"{task}" + ("" if pd.isna(shots) else f" ({int(shots)}-shot)")
        overlay = overlay_factory(task, shots) if overlay_factory else None
        fig = plot_task(sub, title, overlay=overlay)
        png = encode_png(fig, dpi=100)
        close(fig)
        out.append((title, (task, shots), png))
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


def analysis_report(
    result: AnalysisResult, figures: Sequence[tuple[str, FigureKey, bytes]], title: str = "mirage analysis"
) -> str:
    """The self-contained HTML report of an analysis, with ``figures`` of :func:`task_figures` embedded."""
    s = result.summary
    counts = s["verdict_counts"]
    parts = [
        f'<div class="box"><p>{s["n_curves"]} curves: {s["n_families"]} families, {s["n_models"]} models, '
        f"{s['n_tasks']} tasks, {s['n_metrics']} metrics"
        + (f", from {s['n_records']:,} sample records" if s["has_records"] else "")
        + ".</p>"
    ]
    if len(result.verdicts):
        parts.append(
            "<p>Verdicts: "
            + ", ".join(
                f'<span class="verdict" style="color:{VERDICT_COLOUR.get(k, "#000")}">{v} {html.escape(k)}</span>'
                for k, v in counts.items()
                if v
            )
            + ".</p>"
        )
    else:
        parts.append(
            "<p>No family and task has both a discontinuous and a continuous metric, so no verdicts; "
            "emergence scores are below.</p>"
        )
    if s["unknown_metrics"]:
        parts.append(
            "<p>Metrics of unknown kind (pass <code>--metric-kind NAME=KIND</code>): "
            + html.escape(", ".join(s["unknown_metrics"]))
            + "</p>"
        )
    parts.append("</div>")
    if len(result.verdicts):
        v = result.verdicts.copy()  # already in VERDICTS order: decided ones first
        v["metrics (discontinuous / continuous)"] = v["discontinuous_metric"] + " / " + v["continuous_metric"]
        v["break p"] = v["break_p_value"]
        cols = [
            "family",
            "task",
            "shots",
            "verdict",
            "metrics (discontinuous / continuous)",
            "n_models",
            "rise",
            "flat_share",
            "break p",
            "transform_check",
            "reason",
        ]
        parts.append("<h2>Verdicts</h2>" + table_html(v[cols], max_rows=40))
    st = s["settings"]
    parts.append(
        "<h2>How verdicts are reached</h2>"
        + _RULE_HTML.format(
            flat=st["min_flat_share"],
            band=st["floor_band"],
            effect=st["min_effect"],
            tol=st["loss_tolerance"],
            level=st["test_level"],
            min_models=st["min_models"],
            min_samples=st["min_samples"],
        )
    )
    if figures:
        no_ci = result.curves["ci_method"].eq(CIMethod.NONE.value)
        bands = (
            f"bands are {st['level']:.0%} confidence intervals"
            if not no_ci.any()
            else f"bands are {st['level']:.0%} confidence intervals where the inputs allow one; "
            f"{int(no_ci.sum())} of {len(no_ci)} points have none (no stderr, n_samples or records) and are "
            "drawn without a band"
        )
        parts.append(
            '<h2>Curves</h2><p class="muted">Discontinuous metrics in red titles; '
            f"{bands}; x is <code>{html.escape(str(s['scale_column']))}</code> on a log axis.</p>"
        )
        for _title, (task, shots), png in figures:
            uri = data_uri(png)
            cap = html.escape(f"{task}" + ("" if pd.isna(shots) else f", {int(shots)}-shot"))
            parts.append(f'<figure><img alt="{cap}" src="{uri}"><figcaption>{cap}</figcaption></figure>')
    parts.extend(_prediction_sections(result))
    parts.extend(_resolution_section(result))
    em = result.emergence.copy()
    if len(em):
        em["_abs"] = em["emergence_score"].abs()
        em = em.sort_values("_abs", ascending=False)
        cols = [
            "family",
            "task",
            "shots",
            "metric",
            "metric_kind",
            "n_models",
            "emergence_score",
            "flat_then_jump",
            "jump_share",
        ]
        parts.append("<h2>Highest emergence scores</h2>" + table_html(em[cols], max_rows=25))
    return html_document(title, "\n".join(parts))


def _prediction_sections(result: AnalysisResult) -> list[str]:
    """Report sections for the exact-match prediction and the target-length analysis."""
    if result.predictions is None or result.predictions.empty:
        return []
    out = [
        "<h2>Exact match predicted from the continuous metric</h2>",
        "<p>A power law <code>CE(N) = (N/c)^α</code> fitted to each family's per-token loss (from the "
        "continuous metric of the same outputs), pushed through <code>exp(-L·CE)</code> with each sample's "
        "target length, predicts every model's exact match. Where the observed interval overlaps the "
        "predicted band, the sudden-looking curve was predictable from the smooth one.</p>",
    ]
    fits = result.prediction_fits
    if fits is not None and len(fits):
        cols = [
            c
            for c in ("family", "task", "shots", "source", "alpha", "alpha_low", "alpha_high", "c", "n_models", "note")
            if c in fits.columns
        ]
        out.append(table_html(fits[cols], max_rows=20))
    rows = result.predictions[result.predictions["row_kind"] == RowKind.MODEL.value]
    cols = [
        c
        for c in (
            "family",
            "task",
            "shots",
            "model",
            "scale",
            "observed_exact_match",
            "observed_low",
            "observed_high",
            "predicted_exact_match",
            "predicted_low",
            "predicted_high",
            "consistent",
        )
        if c in rows.columns
    ]
    out.append(table_html(rows[cols], max_rows=40))
    lengths = result.lengths
    if lengths is not None and lengths["length"].nunique() >= 2:
        out.append(
            "<h2>Target length</h2><p>At a fixed model the theory says exact match falls geometrically "
            "with target length (<code>p̂^L</code>, dashed) while token edit distance grows linearly "
            "(<code>L(1-p̂)</code>).</p>"
        )
        plt = pyplot()
        keys = [k for k in ("family", "task", "shots") if k in lengths.columns]
        for key, g in list(lengths.groupby(keys, dropna=False))[:6]:
            fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
            plot_length_analysis(axes[0], g)
            observed = g["observed_exact_match"][g["observed_exact_match"] > 0]
            if len(observed):  # predictions for tiny models would stretch the axis to 1e-20
                axes[0].set_ylim(bottom=max(float(observed.min()) / 5, 1e-6), top=1.5)
            for i, (_model, m) in enumerate(g.groupby("model", sort=False)):
                m = m.sort_values("length")
                axes[1].plot(m["length"], m["observed_token_edit_distance"], "o", color=f"C{i % 10}", ms=4)
                axes[1].plot(m["length"], m["predicted_token_edit_distance"], "--", color=f"C{i % 10}", lw=1)
            axes[1].set_xlabel("target length (tokens)")
            axes[1].set_ylabel("token edit distance (dashed: L(1-p̂))")
            axes[0].legend(fontsize=7, frameon=False)
            title = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if not pd.isna(k))
            fig.suptitle(title, fontsize=10)
            fig.tight_layout()
            out.append(
                f'<figure><img alt="{html.escape(title)}" src="{figure_to_data_uri(fig)}">'
                f"<figcaption>{html.escape(title)}: exact match and token edit distance by target length"
                "</figcaption></figure>"
            )
            close(fig)
    return out


def _resolution_section(result: AnalysisResult) -> list[str]:
    res = result.resolution
    if res is None or res.empty:
        return []
    above = int(res["above_chance"].sum())
    out = [
        "<h2>Better statistics: are the small models above chance?</h2>",
        f"<p>{above} of {len(res)} model × metric points have a Wilson lower bound above chance. "
        "<code>samples_needed</code> is how many test items would show the model above chance with 80% power "
        "(using the exact match predicted from the continuous metric where there is one, so a model with "
        "0 of n right still gets an answer); <code>resolution</code> is 1/(items × target length).</p>",
    ]
    cols = [
        "family",
        "task",
        "shots",
        "model",
        "metric",
        "n_samples",
        "value",
        "ci_low",
        "ci_high",
        "chance",
        "above_chance",
        "rate_used",
        "rate_source",
        "samples_needed",
        "resolution",
    ]
    out.append(table_html(res.sort_values(["family", "task", "metric", "scale"])[cols], max_rows=40))
    return out
