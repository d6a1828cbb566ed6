"""The writers: each command's result into its ``--out`` directory, built beside the old one and
swapped in whole (:func:`mirage.io.files.atomic_dir`), so either every file is replaced or none
is. File names come from the table specs (:mod:`mirage.schema.tables`); figures and pages from
:mod:`mirage.report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..progress import progress_iter
from ..report.analysis import analysis_report, figure_jobs, task_charts
from ..report.figure_pool import PendingFigures, figure_workers
from ..report.forecast import forecast_charts, forecast_figure, forecast_report
from ..report.meta import meta_report, plot_score_distribution, plot_strongest, strongest_chart
from ..report.png import close, data_uri, encode_png
from ..report.story import story_page
from ..report.terminal import UnitProgress, theory_summary, vision_summary
from ..report.theory import theory_chart, theory_figure, theory_report
from ..report.vision import vision_chart, vision_figure, vision_report
from ..schema.results import AnalysisResult, ForecastResult, MetaResult, StoryTables, TheoryResult, VisionResult
from ..schema.tables import (
    BACKTESTS,
    CROSSINGS,
    CURVES,
    EMERGENCE,
    EVIDENCE,
    FIGURES_DIR,
    FORECAST,
    FORECAST_CROSSINGS,
    FORECAST_FITS,
    LENGTHS,
    META_BY_METRIC,
    META_CURVES,
    META_EMERGENCE,
    META_PAIRS,
    META_RESCORE,
    PASS_RATES,
    PREDICTION_FITS,
    PREDICTIONS,
    REPORT_FILE,
    RESOLUTION,
    SAMPLES,
    SUMMARY_FILE,
    THEORY,
    VERDICTS,
    VISION_EMERGENCE,
    VISION_PREDICTIONS,
    VISION_SCORES,
)
from .files import ParquetSink, atomic_dir, json_default, slug, write_csv, write_json, write_parquet, write_text

THEORY_FIGURE = "theory.png"
META_FIGURES = ("emergence_distribution.png", "strongest.png")


@dataclasses.dataclass
class AnalysisOutput:
    """An analysis output directory being built (:func:`open_analysis_output`): the streamed
    analysis appends each unit's per-sample metrics to ``samples`` and reports each unit to
    ``progress``; :func:`write_analysis_into` then writes the rest into ``directory``."""

    directory: Path
    samples: ParquetSink
    progress: UnitProgress


@contextmanager
def open_analysis_output(out_dir: str | Path, *, progress: bool = False) -> Iterator[AnalysisOutput]:
    """Build ``out_dir`` as :func:`write_analysis` does (swapped in whole on success, left as it
    was on error), opened before the analysis runs so that ``samples.parquet`` is written unit by
    unit while the records stream and no per-sample table is held in memory."""
    with atomic_dir(out_dir) as tmp:
        out = AnalysisOutput(tmp, ParquetSink(tmp / SAMPLES.file), UnitProgress(enabled=progress))
        try:
            yield out
        except BaseException:
            out.samples.abort()
            raise
        finally:
            out.progress.close()


def write_analysis(
    result: AnalysisResult,
    out_dir: str | Path,
    *,
    max_figures: int = 24,
    title: str = "mirage analysis",
    progress: bool = False,
    featured_tasks: Sequence[str] = (),
    static: bool = False,
) -> AnalysisResult:
    """Write ``curves.csv``, ``emergence.csv``, ``verdicts.csv``, ``evidence.csv`` (every test behind
    the verdicts), ``summary.json``, ``figures/*.png`` and ``report.html`` (and, from records,
    ``samples.parquet``, ``predictions.csv``, ``prediction_fits.csv``, ``lengths.csv``,
    ``resolution.csv``, and ``pass_rates.csv`` from until-pass records) atomically into
    ``out_dir``; return the result with the figure names in its summary. ``report.html`` is
    interactive (Plotly, inlined) unless ``static``: then it embeds the PNG figures."""
    with atomic_dir(out_dir) as tmp:
        return write_analysis_into(
            result,
            tmp,
            max_figures=max_figures,
            title=title,
            progress=progress,
            featured_tasks=featured_tasks,
            static=static,
        )


def write_analysis_into(
    result: AnalysisResult,
    directory: Path,
    *,
    max_figures: int = 24,
    title: str = "mirage analysis",
    progress: bool = False,
    featured_tasks: Sequence[str] = (),
    static: bool = False,
) -> AnalysisResult:
    """:func:`write_analysis` into a directory being built (the caller swaps it in); the samples
    are written only when the result holds them (a streamed analysis wrote them already)."""
    tmp = Path(directory)
    # figures are drawn by worker processes (when there are cores to spare) while the tables are written
    pending = PendingFigures(figure_jobs(result, max_figures=max_figures, featured=featured_tasks), figure_workers())
    try:
        write_csv(tmp / CURVES.file, result.curves)
        write_csv(tmp / EMERGENCE.file, result.emergence)
        write_csv(tmp / VERDICTS.file, result.verdicts)
        if result.evidence is not None:
            write_csv(tmp / EVIDENCE.file, result.evidence)
        if result.samples is not None:
            write_parquet(tmp / SAMPLES.file, result.samples)
        if result.predictions is not None:
            write_csv(tmp / PREDICTIONS.file, result.predictions)
            write_csv(tmp / PREDICTION_FITS.file, result.prediction_fits)
            write_csv(tmp / LENGTHS.file, result.lengths)
        if result.resolution is not None and len(result.resolution):
            write_csv(tmp / RESOLUTION.file, result.resolution)
        if result.pass_rates is not None:
            write_csv(tmp / PASS_RATES.file, result.pass_rates)
        charts = None if static else task_charts(result, pending.jobs)
    except BaseException:
        pending.cancel()  # the output is abandoned: no figure is drawn for it
        raise
    figures = pending.result(progress=progress)
    (tmp / FIGURES_DIR).mkdir()
    names = []
    for fig_title, _key, png in figures:
        name = slug(fig_title) + ".png"  # readable + hash of the title: tasks αβ and γδ get two files
        (tmp / FIGURES_DIR / name).write_bytes(png)
        names.append(name)
    summary = dict(result.summary, figures=names)
    write_json(tmp / SUMMARY_FILE, summary)
    write_text(tmp / REPORT_FILE, analysis_report(result, figures, title=title, charts=charts))
    return dataclasses.replace(result, summary=summary)


def write_theory(result: TheoryResult, out_dir: str | Path, *, static: bool = False) -> Path:
    """Write ``theory.csv``, ``emergence.csv``, ``crossings.csv``, ``figures/theory.png`` and
    ``report.html`` (interactive unless ``static``) atomically; return ``out_dir``."""
    fig = theory_figure(result)
    try:
        png = encode_png(fig, dpi=110)  # rendered once: the figure file and the report's image
    finally:
        close(fig)
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / THEORY.file, result.table)
        write_csv(tmp / EMERGENCE.file, result.emergence)
        write_csv(tmp / CROSSINGS.file, result.crossings)
        (tmp / FIGURES_DIR).mkdir()
        (tmp / FIGURES_DIR / THEORY_FIGURE).write_bytes(png)
        write_text(tmp / REPORT_FILE, theory_report(result, png, None if static else theory_chart(result)))
    return Path(out_dir)


FORECAST_FIGURE = "forecast.png"


def write_forecast(
    result: ForecastResult, out_dir: str | Path, title: str = "mirage forecast", *, static: bool = False
) -> Path:
    """Write ``forecast.csv``, ``crossings.csv``, ``forecast_fits.csv``, ``backtests.csv`` (when
    back-tested), ``summary.json``, ``figures/forecast.png`` and ``report.html`` (interactive
    unless ``static``) atomically; return ``out_dir``."""
    fig = forecast_figure(result)
    try:
        png = encode_png(fig, dpi=110)
    finally:
        close(fig)
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / FORECAST.file, result.forecast)
        write_csv(tmp / FORECAST_CROSSINGS.file, result.crossings)
        write_csv(tmp / FORECAST_FITS.file, result.fits)
        if len(result.backtests):
            write_csv(tmp / BACKTESTS.file, result.backtests)
        write_json(tmp / SUMMARY_FILE, result.summary)
        (tmp / FIGURES_DIR).mkdir()
        (tmp / FIGURES_DIR / FORECAST_FIGURE).write_bytes(png)
        write_text(tmp / REPORT_FILE, forecast_report(result, png, title, None if static else forecast_charts(result)))
    return Path(out_dir)


def write_meta(
    result: MetaResult,
    out_dir: str | Path,
    *,
    top: int = 12,
    title: str = "mirage meta-analysis",
    progress: bool = False,
    static: bool = False,
) -> dict[str, Path]:
    """Write ``meta_curves.csv``, ``meta_emergence.csv``, ``meta_by_metric.csv``, ``meta_pairs.csv``,
    ``meta_rescore.csv``, ``summary.json``, ``figures/`` and ``report.html`` (interactive unless
    ``static``) atomically; return the figure paths."""
    steps = [
        (META_FIGURES[0], lambda: plot_score_distribution(result.emergence, result.summary["threshold"])),
        (META_FIGURES[1], lambda: plot_strongest(result.curves, result.emergence, result.pairs, top)),
    ]
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / META_CURVES.file, result.curves)
        write_csv(tmp / META_EMERGENCE.file, result.emergence)
        write_csv(tmp / META_BY_METRIC.file, result.by_metric)
        write_csv(tmp / META_PAIRS.file, result.pairs)
        write_csv(tmp / META_RESCORE.file, result.rescore)
        (tmp / FIGURES_DIR).mkdir()
        uris = {}
        for name, make in progress_iter(steps, "figures", unit="figure", enabled=progress):
            fig = make()
            if fig is None:
                continue
            png = encode_png(fig, dpi=100, tight=False)  # the same bytes go to figures/ and into the report
            close(fig)
            (tmp / FIGURES_DIR / name).write_bytes(png)
            uris[name] = data_uri(png)
        write_json(tmp / SUMMARY_FILE, dict(result.summary, figures=sorted(uris)))
        strongest = None if static else strongest_chart(result.curves, result.emergence, result.pairs, top)
        write_text(tmp / REPORT_FILE, meta_report(result, uris, title, strongest))
    return {name: Path(out_dir) / FIGURES_DIR / name for name in uris}


def write_vision(result: VisionResult, out_dir: str | Path, *, static: bool = False) -> Path:
    """Write ``scores.csv``, ``emergence.csv``, ``_predictions.parquet``, ``summary.json``,
    ``figures/*.png`` and ``report.html`` (interactive unless ``static``) atomically; return the
    report path."""
    figures = {}
    for e in result.experiments:
        fig = vision_figure(e, result.emergence)
        try:
            figures[e.name] = encode_png(fig, dpi=110)
        finally:
            close(fig)
    with atomic_dir(out_dir) as tmp:
        write_csv(tmp / VISION_SCORES.file, result.scores)
        write_csv(tmp / VISION_EMERGENCE.file, result.emergence)
        write_parquet(
            tmp / VISION_PREDICTIONS.file, pd.concat([e.predictions for e in result.experiments], ignore_index=True)
        )
        write_json(tmp / SUMMARY_FILE, vision_summary(result))
        (tmp / FIGURES_DIR).mkdir()
        for name, png in figures.items():
            (tmp / FIGURES_DIR / f"{name}.png").write_bytes(png)
        charts = None if static else {e.name: vision_chart(e, result.emergence) for e in result.experiments}
        write_text(tmp / REPORT_FILE, vision_report(result, figures, charts))
    return Path(out_dir) / REPORT_FILE


def write_story(
    tables: StoryTables,
    path: str | Path,
    *,
    family_table: pd.DataFrame | None = None,
    title: str = "mirage demo",
    intro_html: str = "",
    analysis_link: str | None = "analysis/report.html",
    static: bool = False,
) -> Path:
    """Write the demo's three-predictions page (one self-contained HTML file; interactive unless
    ``static``) atomically."""
    write_text(
        Path(path),
        story_page(
            tables,
            family_table=family_table,
            title=title,
            intro_html=intro_html,
            analysis_link=analysis_link,
            static=static,
        ),
    )
    return Path(path)


def summary_of(result: Any) -> dict[str, Any]:
    """A run's summary as JSON-ready data (``--json``): what ``summary.json`` holds for analyze,
    meta, forecast and vision; the law and its crossings for theory; the fields of any other result (eval's
    shards, train-family's models), tables left out."""
    if isinstance(result, (AnalysisResult, MetaResult, ForecastResult)):
        return dict(result.summary)
    if isinstance(result, VisionResult):
        return vision_summary(result)
    if isinstance(result, TheoryResult):
        return theory_summary(result)
    if isinstance(result, dict):
        return dict(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {
            f.name: _plain(getattr(result, f.name))
            for f in dataclasses.fields(result)
            if _kept(getattr(result, f.name))
        }
    raise TypeError(f"no summary for a {type(result).__name__}")


def _kept(value: Any) -> bool:
    return not isinstance(value, (pd.DataFrame, pd.Series))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if _kept(getattr(value, f.name))
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def summary_json(result: Any, **extra: Any) -> str:
    """:func:`summary_of` ``result`` (and ``extra`` keys, e.g. the report's path) as one JSON
    document (no NaN: non-finite numbers as strings)."""
    data = dict(summary_of(result), **extra)
    return json.dumps(_finite(data), default=json_default, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
