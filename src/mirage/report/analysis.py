"""The ``mirage analyze`` report: one figure per chosen (task, shots) and the self-contained HTML
page, from an :class:`~mirage.schema.results.AnalysisResult`. Rendering only: the writer
(:func:`mirage.io.outputs.write_analysis`) names and writes the files.

The page is built one section at a time (one function per section, in page order): the summary,
the verdicts (decided ones first, then "no apparent emergence", "insufficient evidence" collapsed
and counted; each row links to its figure and opens the numbers it was decided on), how verdicts
are reached, the curves (interactive Plotly charts, or PNG figures with ``static``), the
predictions, the small models' resolution and the highest emergence scores.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..schema.results import AnalysisResult
from ..schema.vocab import VERDICT_ORDER, CIMethod, RowKind, Verdict
from .figure_pool import FigureJob, PendingFigures
from .figures import VERDICT_COLOUR, plot_length_analysis
from .html import anchor_id, table_html
from .interactive import Chart, chart_html, interactive_document, length_chart, metric_panels, search_box
from .png import close, data_uri, figure_to_data_uri, pyplot

FigureKey = tuple[Any, Any]  # (task, shots)
DECIDED = (Verdict.NOT_EXPLAINED.value, Verdict.EXPLAINED.value)


def _figure_groups(result: AnalysisResult, max_figures: int, featured: Sequence[str] = ()) -> list[FigureKey]:
    """(task, shots) groups to draw: featured tasks, then those with the most decided verdict
    (decided first), then the highest absolute emergence score, then by task name."""
    groups = result.curves[["task", "shots"]].drop_duplicates().reset_index(drop=True)
    if not len(groups):
        return []
    rank = {v.value: i for i, v in enumerate(VERDICT_ORDER)}  # decided verdicts first
    v = result.verdicts
    if len(v):
        prio = (
            v.assign(_rank=v["verdict"].astype(str).map(rank).fillna(4).astype(int))
            .groupby(["task", "shots"], dropna=False)["_rank"]
            .min()
            .rename("_prio")
            .reset_index()
        )
        groups = groups.merge(prio, on=["task", "shots"], how="left", sort=False)
    else:
        groups["_prio"] = np.nan
    em = result.emergence
    best = (
        em.assign(_abs=em["emergence_score"].abs())
        .groupby(["task", "shots"], dropna=False)["_abs"]
        .max()
        .rename("_best")
        .reset_index()
    )
    # a group whose scores are all NaN or infinite sorts as the highest; one without scores as 0
    best["_best"] = best["_best"].where(np.isfinite(best["_best"].to_numpy(dtype=float)), 1e300)
    groups = groups.merge(best, on=["task", "shots"], how="left", sort=False)
    first = np.where(groups["task"].isin(list(featured)), -1, groups["_prio"].fillna(5).to_numpy(dtype=float))
    score = -groups["_best"].fillna(0.0).to_numpy(dtype=float)
    tasks, shots = groups["task"].tolist(), groups["shots"].tolist()
    order = sorted(range(len(groups)), key=lambda i: (first[i], score[i], str(tasks[i])))[:max_figures]
    return [(tasks[i], shots[i]) for i in order]


def _curve_rows(result: AnalysisResult, task: Any, shots: Any) -> pd.DataFrame:
    curves = result.curves
    sel = (curves["task"] == task) & (curves["shots"].isna() if pd.isna(shots) else (curves["shots"] == shots))
    return curves[sel]


def figure_title(task: Any, shots: Any) -> str:
    """A (task, shots) figure's title: ``lambada (0-shot)``."""
    return f"{task}" + ("" if pd.isna(shots) else f" ({int(shots)}-shot)")


def figure_anchor(task: Any, shots: Any) -> str:
    """The element id of a (task, shots) figure, in either report; verdict rows link to it."""
    return anchor_id("fig", task, "" if pd.isna(shots) else int(shots))


def floors_of(result: AnalysisResult, task: Any, shots: Any) -> dict[str, list[float]]:
    """The chance levels (verdicts' ``floor``) of each discontinuous metric of a (task, shots)."""
    v = result.verdicts
    if not len(v) or "floor" not in v.columns:
        return {}
    sel = v[(v["task"] == task) & (v["shots"].isna() if pd.isna(shots) else (v["shots"] == shots))]
    out: dict[str, list[float]] = {}
    for metric, g in sel.groupby("discontinuous_metric"):
        levels = sorted({float(f) for f in g["floor"] if pd.notna(f) and np.isfinite(float(f))})
        if levels:
            out[str(metric)] = levels
    return out


def figure_jobs(result: AnalysisResult, max_figures: int = 24, featured: Sequence[str] = ()) -> list[FigureJob]:
    """The figures :func:`task_figures` draws, most informative first."""
    predictions = result.predictions
    curve_rows = (
        predictions[predictions["row_kind"] == RowKind.CURVE.value]
        if predictions is not None and len(predictions)
        else None
    )
    jobs = []
    for task, shots in _figure_groups(result, max_figures, featured):
        pred = None
        if curve_rows is not None:
            pred = curve_rows[curve_rows["task"] == task]
            if "shots" in pred.columns and not pd.isna(shots):
                pred = pred[pred["shots"] == shots]
        jobs.append(
            FigureJob(
                title=figure_title(task, shots),
                key=(task, shots),
                curves=_curve_rows(result, task, shots),
                floors=floors_of(result, task, shots),
                predictions=pred if pred is not None and len(pred) else None,
            )
        )
    return jobs


def task_figures(
    result: AnalysisResult,
    max_figures: int = 24,
    progress: bool = False,
    featured: Sequence[str] = (),
    workers: int | None = 0,
) -> list[tuple[str, FigureKey, bytes]]:
    """One PNG per chosen (task, shots): [(title, (task, shots), png bytes)], most informative
    first; each exact-match panel carries the exact match predicted from the continuous metric.
    ``workers``: processes drawing them (None: :func:`figure_workers`; 0: this process)."""
    return PendingFigures(figure_jobs(result, max_figures, featured), workers).result(progress)


def task_charts(result: AnalysisResult, jobs: Iterable[FigureJob]) -> list[Chart]:
    """One interactive chart per figure job (:func:`figure_jobs`: the same rows, floors and
    predictions as the PNG): its metrics side by side, a trace per family, the exact match
    predicted from the continuous metric dashed where there is one."""
    scale = str(result.summary.get("scale_column", "scale"))
    charts = []
    for job in jobs:
        task, shots = job.key
        fig = metric_panels(
            job.curves,
            floors=job.floors,
            predictions=job.predictions,
            scale_label=scale,
            title=html.escape(job.title),
        )
        families = tuple(sorted(map(str, job.curves["family"].unique())))
        charts.append(
            Chart(
                anchor=figure_anchor(task, shots),
                figure=fig,
                caption=f"{job.title}: {len(families)} famil{'y' if len(families) == 1 else 'ies'}; hover a point for its model, "
                "value, interval and n; click a family to hide or show it, double-click to see it alone.",
                task=str(task),
                families=families,
            )
        )
    return charts


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
    result: AnalysisResult,
    figures: Sequence[tuple[str, FigureKey, bytes]],
    title: str = "mirage analysis",
    *,
    charts: Sequence[Chart] | None = None,
) -> str:
    """The self-contained HTML report of an analysis: interactive when ``charts`` (of
    :func:`task_charts`) are given, else the PNG ``figures`` of :func:`task_figures` embedded."""
    drawn = {key for _t, key, _p in figures} if charts is None else None
    anchors = (
        {figure_anchor(task, shots) for task, shots in drawn} if drawn is not None else {c.anchor for c in charts or ()}
    )
    parts = [
        summary_section(result),
        search_box("filter tasks and families (e.g. lambada, pythia)"),
        verdicts_section(result, anchors),
        rule_section(result),
        curves_section(result, figures, charts),
        *_prediction_sections(result, interactive=charts is not None),
        *_resolution_section(result),
        emergence_section(result),
    ]
    body = "\n".join(p for p in parts if p)
    return interactive_document(title, body, plotly=charts is not None)


def summary_section(result: AnalysisResult) -> str:
    """What was analysed and the verdict counts, in the order verdicts are listed."""
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
    return "".join(parts)


# the columns of a verdict row on the page; every other column of verdicts.csv is in its details
_VERDICT_COLUMNS = (
    ("family", "family"),
    ("task", "task"),
    ("shots", "shots"),
    ("verdict", "verdict"),
    ("metrics", "discontinuous / continuous"),
    ("n_models", "models"),
    ("rise", "rise"),
    ("flat_share", "flat share"),
    ("break_p_value", "break p"),
    ("transform_check", "transform"),
)
_EVIDENCE_COLUMNS = ("test", "metric", "statistic", "p_value", "outcome", "detail")


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{value}</td>"
    if isinstance(value, (int, np.integer)):
        return f'<td class="num">{value}</td>'
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{_fmt(value)}</td>'
    missing = value is None or (np.ndim(value) == 0 and pd.isna(value))
    return f"<td>{html.escape('' if missing else str(value))}</td>"


def _fmt(value: Any) -> str:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if np.isnan(f):
        return ""
    if np.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f:.4g}"


# verdict rows listed per section of the page; the rest are counted and left to verdicts.csv, so a
# page of 100,000 verdicts stays a page a browser opens (the search box filters what is listed)
MAX_VERDICT_ROWS = 2000

_GroupKey = tuple[Any, Any, Any, Any]


def _group_key(row: Mapping[str, Any]) -> _GroupKey:
    shots: Any = row.get("shots")
    return (row["family"], row["task"], None if pd.isna(shots) else int(shots), row["discontinuous_metric"])


_VERDICT_KEYS = ["family", "task", "shots", "discontinuous_metric"]


def evidence_by_group(
    evidence: pd.DataFrame | None, verdicts: pd.DataFrame | None = None
) -> dict[_GroupKey, list[dict[str, Any]]]:
    """evidence.csv rows by the verdict they belong to (family, task, shots, discontinuous metric),
    grouped once so a page of many verdicts does not scan the whole table per row; with
    ``verdicts``, only the rows of those verdicts (the ones a page lists)."""
    groups: dict[_GroupKey, list[dict[str, Any]]] = {}
    if evidence is None or not len(evidence):
        return groups
    if verdicts is not None and all(k in evidence.columns and k in verdicts.columns for k in _VERDICT_KEYS):
        wanted = verdicts[_VERDICT_KEYS].drop_duplicates()
        evidence = evidence.merge(wanted, on=_VERDICT_KEYS, how="inner", sort=False)
    for rec in evidence.to_dict("records"):
        groups.setdefault(_group_key(rec), []).append(rec)
    return groups


def verdict_anchor(row: Mapping[str, Any]) -> str:
    """The element id of one verdict row (family, task, shots, discontinuous metric)."""
    shots: Any = row.get("shots")
    return anchor_id(
        "verdict", row["family"], row["task"], "" if pd.isna(shots) else int(shots), row["discontinuous_metric"]
    )


def _numbers_html(row: Mapping[str, Any], evidence: Mapping[_GroupKey, list[dict[str, Any]]]) -> str:
    """Every column of the row's verdicts.csv line and its evidence.csv tests, behind a toggle."""
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>"
        for k, v in row.items()
        if not (v is None or (np.ndim(v) == 0 and pd.isna(v)))
    )
    tests = ""
    ev = evidence.get(_group_key(row), [])
    if ev:
        head = "".join(f"<th>{c}</th>" for c in _EVIDENCE_COLUMNS)
        body = "".join("<tr>" + "".join(_cell(r[c]) for c in _EVIDENCE_COLUMNS) + "</tr>" for r in ev)
        tests = f"<p>evidence.csv</p><table><tr>{head}</tr>{body}</table>"
    return f"<details><summary>numbers</summary><p>verdicts.csv</p><table>{cells}</table>{tests}</details>"


def verdict_table(
    rows: pd.DataFrame,
    evidence: Mapping[_GroupKey, list[dict[str, Any]]],
    anchors: set[str],
    max_rows: int = MAX_VERDICT_ROWS,
) -> str:
    """Verdict rows, each searchable, linked to its figure and opening the numbers it was decided on;
    past ``max_rows`` the rest are counted and left to verdicts.csv."""
    shown = rows.iloc[:max_rows]
    head = (
        "".join(f"<th>{html.escape(label)}</th>" for _c, label in _VERDICT_COLUMNS) + "<th>figure</th><th>reason</th>"
    )
    out = []
    for row in shown.to_dict("records"):
        row_view = dict(row, metrics=f"{row['discontinuous_metric']} / {row['continuous_metric']}")
        colour = VERDICT_COLOUR.get(str(row["verdict"]), "#000")
        cells = []
        for col, _label in _VERDICT_COLUMNS:
            if col == "verdict":
                cells.append(f'<td class="verdict" style="color:{colour}">{html.escape(str(row["verdict"]))}</td>')
            else:
                cells.append(_cell(row_view.get(col)))
        anchor = figure_anchor(row["task"], row["shots"])
        link = (
            f'<td><a href="#{anchor}">figure</a></td>'
            if anchor in anchors
            else '<td class="muted">not drawn (--max-figures)</td>'
        )
        search = " ".join(str(row_view.get(c, "")) for c in ("family", "task", "metrics", "verdict"))
        # the row's own id, so a figure, a log line or another page can link to one verdict
        out.append(
            f'<tr id="{verdict_anchor(row)}" data-search="{html.escape(search, quote=True)}">{"".join(cells)}{link}'
            f"<td>{html.escape(str(row['reason']))}{_numbers_html(row, evidence)}</td></tr>"
        )
    more = (
        f'<p class="muted">{len(rows) - len(shown)} more rows of this kind are in verdicts.csv '
        f"(the page lists the first {len(shown)}, in the file's order).</p>"
        if len(rows) > len(shown)
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>{more}"


def verdicts_section(result: AnalysisResult, anchors: set[str]) -> str:
    """Decided verdicts first, then "no apparent emergence", then "insufficient evidence"
    collapsed and counted: the order of verdicts.csv and of the terminal."""
    v = result.verdicts
    if not len(v):
        return ""
    decided = v[v["verdict"].isin(DECIDED)]
    none = v[v["verdict"] == Verdict.NONE.value]
    insufficient = v[v["verdict"] == Verdict.INSUFFICIENT.value]
    parts = ["<h2>Verdicts</h2>"]
    listed = pd.concat([rows.iloc[:MAX_VERDICT_ROWS] for rows in (decided, none, insufficient)])
    evidence = evidence_by_group(result.evidence, listed)
    if len(decided):
        parts.append(f"<h3>Decided: {len(decided)}</h3>" + verdict_table(decided, evidence, anchors))
    else:
        parts.append('<p class="muted">No verdict is decided (explained or not explained by the metric).</p>')
    if len(none):
        parts.append(f"<h3>No apparent emergence: {len(none)}</h3>" + verdict_table(none, evidence, anchors))
    if len(insufficient):
        parts.append(
            f'<details class="collapsed"><summary><b>Insufficient evidence: {len(insufficient)}</b> '
            "(no intervals, too few models or samples, or no continuous metric on a per-token loss scale; "
            "click to list)</summary>" + verdict_table(insufficient, evidence, anchors) + "</details>"
        )
    return "".join(parts)


def rule_section(result: AnalysisResult) -> str:
    """How verdicts are reached, with this run's settings."""
    st = result.summary["settings"]
    return "<h2>How verdicts are reached</h2>" + _RULE_HTML.format(
        flat=st["min_flat_share"],
        band=st["floor_band"],
        effect=st["min_effect"],
        tol=st["loss_tolerance"],
        level=st["test_level"],
        min_models=st["min_models"],
        min_samples=st["min_samples"],
    )


def curves_section(
    result: AnalysisResult, figures: Sequence[tuple[str, FigureKey, bytes]], charts: Sequence[Chart] | None
) -> str:
    """The curves of each drawn (task, shots): interactive charts, or the PNG figures."""
    if not (charts if charts is not None else figures):
        return ""
    s, st = result.summary, result.summary["settings"]
    no_ci = result.curves["ci_method"].eq(CIMethod.NONE.value)
    bands = (
        f"bars are {st['level']:.0%} confidence intervals"
        if not no_ci.any()
        else f"bars are {st['level']:.0%} confidence intervals where the inputs allow one; "
        f"{int(no_ci.sum())} of {len(no_ci)} points have none (no stderr, n_samples or records) and are "
        "drawn without one"
    )
    if charts is None:
        bands = bands.replace("bars are", "bands are")
    parts = [
        '<h2>Curves</h2><p class="muted">Per task, its metrics side by side, discontinuous ones first (red '
        f"titles); {bands}; x is <code>{html.escape(str(s['scale_column']))}</code> on a log axis. Rates "
        "(accuracies, exact match) show their whole 0–1 range; a dotted line marks the chance level (floor) "
        "where it is known. Perplexities are on a log axis.</p>"
    ]
    if charts is not None:
        parts.extend(chart_html(c) for c in charts)
        return "".join(parts)
    for _title, (task, shots), png in figures:
        cap = html.escape(f"{task}" + ("" if pd.isna(shots) else f", {int(shots)}-shot"))
        families = sorted(map(str, _curve_rows(result, task, shots)["family"].unique()))
        parts.append(
            f'<figure class="chart" id="{figure_anchor(task, shots)}" data-task="{html.escape(str(task), quote=True)}" '
            f'data-families="{html.escape(_json_list(families), quote=True)}"><img alt="{cap}" src="{data_uri(png)}">'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    return "".join(parts)


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))


def emergence_section(result: AnalysisResult) -> str:
    """The curves with the highest emergence scores (reported, not deciding)."""
    em = result.emergence.copy()
    if not len(em):
        return ""
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
    return "<h2>Highest emergence scores</h2>" + table_html(em[cols], max_rows=25)


def _prediction_sections(result: AnalysisResult, interactive: bool = False) -> list[str]:
    """Report sections for the exact-match prediction and the target-length analysis (its charts
    interactive, or PNG figures)."""
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
        keys = [k for k in ("family", "task", "shots") if k in lengths.columns]
        for key, g in list(lengths.groupby(keys, dropna=False))[:6]:
            title = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)) if not pd.isna(k))
            if interactive:
                out.append(
                    chart_html(
                        length_chart(
                            g,
                            anchor=anchor_id("lengths", *(key if isinstance(key, tuple) else (key,))),
                            title=html.escape(title),
                            search=title,  # the search box finds it by family or task
                            caption=f"{title}: exact match and token edit distance by target length, per model; "
                            "theory dashed; click a model to hide it.",
                        )
                    )
                )
                continue
            out.append(_length_figure(g, title))
    return out


def _length_figure(g: pd.DataFrame, title: str) -> str:
    """The static target-length figure of one (family, task, shots)."""
    plt = pyplot()
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
    # one legend for both panels, beside them rather than over the points
    axes[1].legend(
        *axes[0].get_legend_handles_labels(), fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0)
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        return (
            f'<figure><img alt="{html.escape(title)}" src="{figure_to_data_uri(fig)}">'
            f"<figcaption>{html.escape(title)}: exact match and token edit distance by target length"
            "</figcaption></figure>"
        )
    finally:
        close(fig)


def _resolution_section(result: AnalysisResult) -> list[str]:
    """Whether the small models are above chance, and how many items would show it."""
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
