"""Verbs that combine a pure ``run_*`` with its ``write_*``: what a command does, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .analysis.analyze import run_analysis
from .io.outputs import open_analysis_output, write_analysis_into
from .schema.results import AnalysisResult, Inputs
from .schema.settings import AnalysisSettings


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
    with open_analysis_output(out_dir, progress=progress) as out:
        streamed = out.samples.write if inputs.records is not None else None
        result = run_analysis(inputs, settings, on_samples=streamed, on_unit=out.progress)
        out.samples.close()
        out.progress.close()
        return write_analysis_into(
            result,
            out.directory,
            max_figures=max_figures,
            title=title,
            progress=progress,
            featured_tasks=featured_tasks,
            static=static,
        )
