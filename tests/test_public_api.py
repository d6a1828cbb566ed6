"""``import mirage`` exposes every command's Python function: ``from mirage import read_inputs,
run_analysis, analyze, AnalysisSettings, ...``, listed in ``__all__``, each loading on first use."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import mirage

# each command and the functions it is a thin layer over: run_* computes, write_* writes
COMMAND_FUNCTIONS = {
    "analyze": ("read_inputs", "run_analysis", "write_analysis", "analyze", "AnalysisSettings"),
    "meta": ("run_meta", "write_meta", "MetaSettings"),
    "theory": ("run_theory", "write_theory", "TheorySettings"),
    "forecast": ("run_forecast", "write_forecast", "ForecastSettings"),
    "vision": ("run_vision", "write_vision", "VisionSettings"),
    "demo": ("run_demo", "run_trained_demo", "story_tables", "write_story"),
    "eval": ("evaluate_family", "evaluate_family_ray", "load_family", "load_task"),
    "train-family": ("make_config", "train_family"),
    "--json": ("summary_of", "summary_json"),
    "DataFrame": ("inputs_from_frame",),
}


@pytest.mark.parametrize("command", sorted(COMMAND_FUNCTIONS))
def test_every_command_has_its_functions_in_all(command: str):
    for name in COMMAND_FUNCTIONS[command]:
        assert name in mirage.__all__, name
        assert callable(getattr(mirage, name)), name


def test_import_mirage_is_light():
    """``import mirage`` loads neither pandas, torch nor plotly (names load on first use)."""
    code = "import sys, mirage; print(sorted(m for m in ('pandas', 'torch', 'plotly') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_plain_dataframe_becomes_an_analysis():
    """A DataFrame without stderr (the KeyError of issue 13) goes through inputs_from_frame."""
    frame = pd.DataFrame(
        {
            "family": "f",
            "model": ["a", "b", "c", "d"],
            "params": [1e6, 1e7, 1e8, 1e9],
            "task": "t",
            "metric": "acc",
            "value": [0.0, 0.01, 0.4, 0.9],
        }
    )
    result = mirage.run_analysis(mirage.inputs_from_frame(frame), mirage.AnalysisSettings(bootstrap=0))
    assert len(result.curves) == 4 and result.curves["ci_method"].eq("none").all()
    with pytest.raises(mirage.MirageInputError, match="scale column 'step' missing"):
        mirage.inputs_from_frame(frame, scale="step")
    with pytest.raises(mirage.MirageInputError, match="expected a pandas DataFrame"):
        mirage.inputs_from_frame([1, 2])  # type: ignore[arg-type]
