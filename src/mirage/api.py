"""Verbs that combine a pure ``run_*`` with its ``write_*``: what a command does, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .analysis.analyze import run_analysis
from .io.outputs import write_analysis
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
    :func:`~mirage.io.outputs.write_analysis` into ``out_dir`` (``mirage analyze``)."""
    return write_analysis(
        run_analysis(inputs, settings),
        out_dir,
        max_figures=max_figures,
        title=title,
        progress=progress,
        featured_tasks=featured_tasks,
        static=static,
    )
