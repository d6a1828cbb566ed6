"""mirage: is an emergent ability a property of the models or of the metric?

The public API mirrors the command line: every ``mirage`` command is a thin layer over the
functions named here, each command with one verb that computes (``run_*``, pure, returns a
result) and one that writes it (``write_*``)::

    from mirage import AnalysisSettings, read_inputs, run_analysis, write_analysis

    result = run_analysis(read_inputs(["results.csv"]), AnalysisSettings(bootstrap=2000, seed=1))
    write_analysis(result, "out/")

Names load on first use (PEP 562), so ``import mirage`` (and ``mirage --help``) imports neither
pandas nor torch. The layers behind them, lowest first: :mod:`mirage.schema` (types, table specs,
vocabularies, settings, results), :mod:`mirage.metrics` and :mod:`mirage.stats`,
:mod:`mirage.model` (the paper's model), :mod:`mirage.analysis` (pure analyses),
:mod:`mirage.report` (figures, HTML), :mod:`mirage.io` (every file touch), and the producers
:mod:`mirage.evaluate`, :mod:`mirage.train`, :mod:`mirage.vision`.

>>> import mirage
>>> mirage.AnalysisSettings().bootstrap
1000
>>> sorted(set(mirage.__all__) - set(dir(mirage)))
[]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import MirageInputError

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # inputs
    "read_inputs": "mirage.io.inputs",
    "inputs_from_frame": "mirage.io.inputs",
    "parse_filters": "mirage.io.inputs",
    "read_records": "mirage.io.records",
    "write_records": "mirage.io.records",
    "records_from_rows": "mirage.schema.records",
    "normalize_records": "mirage.schema.records",
    "load_family": "mirage.io.family",
    "load_task": "mirage.io.tasks",
    "bundled_path": "mirage.io.bundled",
    "ensure_writable": "mirage.io.files",
    # settings and results
    "AnalysisSettings": "mirage.schema.settings",
    "VerdictSettings": "mirage.schema.settings",
    "MetaSettings": "mirage.schema.settings",
    "TheorySettings": "mirage.schema.settings",
    "ForecastSettings": "mirage.schema.settings",
    "VisionSettings": "mirage.schema.settings",
    "parse_experiments": "mirage.schema.settings",
    "check_seed": "mirage.schema.checks",
    "Inputs": "mirage.schema.results",
    "AnalysisResult": "mirage.schema.results",
    "MetaResult": "mirage.schema.results",
    "TheoryResult": "mirage.schema.results",
    "ForecastResult": "mirage.schema.results",
    "VisionResult": "mirage.schema.results",
    "StoryTables": "mirage.schema.results",
    "Verdict": "mirage.schema.vocab",
    "MetricKind": "mirage.schema.vocab",
    # metrics
    "Metric": "mirage.metrics",
    "register_metric": "mirage.metrics",
    "compute_sample_metrics": "mirage.metrics",
    "metric_kind": "mirage.metrics",
    "parse_kind_overrides": "mirage.metrics",
    # the commands: run_* computes, write_* writes
    "run_analysis": "mirage.analysis.analyze",
    "write_analysis": "mirage.io.outputs",
    "analyze": "mirage.api",
    "run_meta": "mirage.analysis.meta",
    "write_meta": "mirage.io.outputs",
    "run_theory": "mirage.analysis.theory",
    "run_forecast": "mirage.analysis.forecast",
    "write_theory": "mirage.io.outputs",
    "write_forecast": "mirage.io.outputs",
    "PowerLaw": "mirage.model.power_law",
    "run_vision": "mirage.vision.run",
    "write_vision": "mirage.io.outputs",
    "story_tables": "mirage.analysis.story",
    "write_story": "mirage.io.outputs",
    "story_summary": "mirage.report.story",
    "print_summary": "mirage.report.terminal",
    "summary_of": "mirage.io.outputs",
    "summary_json": "mirage.io.outputs",
    "evaluate_family": "mirage.evaluate.run",
    "evaluate_family_ray": "mirage.evaluate.ray_runner",
    "UntilPass": "mirage.evaluate.until_pass",
    "make_config": "mirage.train.arithmetic",
    "train_family": "mirage.train.arithmetic",
    "run_demo": "mirage.demo",
    "run_trained_demo": "mirage.demo",
}

__all__ = [
    "MirageInputError",
    "__version__",
    "AnalysisResult",
    "AnalysisSettings",
    "ForecastResult",
    "ForecastSettings",
    "Inputs",
    "MetaResult",
    "MetaSettings",
    "Metric",
    "MetricKind",
    "PowerLaw",
    "StoryTables",
    "TheoryResult",
    "TheorySettings",
    "UntilPass",
    "Verdict",
    "VerdictSettings",
    "VisionResult",
    "VisionSettings",
    "analyze",
    "bundled_path",
    "check_seed",
    "compute_sample_metrics",
    "ensure_writable",
    "evaluate_family",
    "evaluate_family_ray",
    "inputs_from_frame",
    "load_family",
    "load_task",
    "make_config",
    "metric_kind",
    "normalize_records",
    "parse_experiments",
    "parse_filters",
    "parse_kind_overrides",
    "print_summary",
    "read_inputs",
    "read_records",
    "records_from_rows",
    "register_metric",
    "run_analysis",
    "run_demo",
    "run_forecast",
    "run_meta",
    "run_theory",
    "run_trained_demo",
    "run_vision",
    "story_summary",
    "story_tables",
    "summary_json",
    "summary_of",
    "train_family",
    "write_analysis",
    "write_forecast",
    "write_meta",
    "write_records",
    "write_story",
    "write_theory",
    "write_vision",
]
assert sorted(__all__[2:]) == sorted(_EXPORTS)  # one list of names

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .analysis.analyze import run_analysis
    from .analysis.forecast import run_forecast
    from .analysis.meta import run_meta
    from .analysis.story import story_tables
    from .analysis.theory import run_theory
    from .api import analyze
    from .demo import run_demo, run_trained_demo
    from .evaluate.ray_runner import evaluate_family_ray
    from .evaluate.run import evaluate_family
    from .evaluate.until_pass import UntilPass
    from .io.bundled import bundled_path
    from .io.family import load_family
    from .io.files import ensure_writable
    from .io.inputs import inputs_from_frame, parse_filters, read_inputs
    from .io.outputs import (
        summary_json,
        summary_of,
        write_analysis,
        write_forecast,
        write_meta,
        write_story,
        write_theory,
        write_vision,
    )
    from .io.records import read_records, write_records
    from .io.tasks import load_task
    from .metrics import Metric, compute_sample_metrics, metric_kind, parse_kind_overrides, register_metric
    from .model.power_law import PowerLaw
    from .report.story import story_summary
    from .report.terminal import print_summary
    from .schema.checks import check_seed
    from .schema.records import normalize_records, records_from_rows
    from .schema.results import (
        AnalysisResult,
        ForecastResult,
        Inputs,
        MetaResult,
        StoryTables,
        TheoryResult,
        VisionResult,
    )
    from .schema.settings import (
        AnalysisSettings,
        MetaSettings,
        TheorySettings,
        VerdictSettings,
        VisionSettings,
        parse_experiments,
    )
    from .schema.vocab import MetricKind, Verdict
    from .train.arithmetic import make_config, train_family
    from .vision.run import run_vision

    __version__: str


def __getattr__(name: str) -> Any:
    """Load a public name on first use (``__version__`` comes from the package metadata)."""
    if name == "__version__":
        return importlib.import_module("importlib.metadata").version("mirage")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mirage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
