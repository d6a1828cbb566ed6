"""Verbs that combine a pure ``run_*`` with its ``write_*``: what a command does, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .analysis.analyze import run_analysis
from .io.files import ParquetSink, atomic_dir
from .io.outputs import write_analysis_into
from .report.terminal import UnitProgress
from .schema.results import AnalysisResult, Inputs
from .schema.settings import AnalysisSettings
from .schema.tables import SAMPLES


def analyze(
    inputs: Inputs,
    out_dir: str | Path,
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    max_figures: int = 24,
    title: str = "mirage analysis",
    progress: bool = False,
    featured_tasks: Sequence[str] = (),
    static: bool = False,
) -> AnalysisResult:
    """:func:`~mirage.analysis.analyze.run_analysis`, then
    :func:`~mirage.io.outputs.write_analysis` into ``out_dir`` (``mirage analyze``).

    The output directory is opened first, so the per-sample metrics go into ``samples.parquet``
    one (family, task) at a time as the records are analysed, and are not kept: memory stays
    bounded whatever the number of records (the returned result's ``samples`` is None).
    """
    with atomic_dir(out_dir) as tmp:
        sink = ParquetSink(tmp / SAMPLES.file)
        shown = UnitProgress(enabled=progress)
        try:
            result = run_analysis(
                inputs, settings, on_samples=sink.write if inputs.records is not None else None, on_unit=shown
            )
            sink.close()
        except BaseException:
            sink.abort()
            raise
        finally:
            shown.close()
        return write_analysis_into(
            result,
            tmp,
            max_figures=max_figures,
            title=title,
            progress=progress,
            featured_tasks=featured_tasks,
            static=static,
        )
