"""`mirage demo --bundled`: the real Pythia/OPT/BLOOM tables shipped in the package, analysed."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.cli import app

pytestmark = pytest.mark.slow  # analyses every shipped table and writes both reports (~80 s)


def test_bundled_demo_analyses_the_shipped_tables(tmp_path):
    out = tmp_path / "bundled"
    result = CliRunner().invoke(app, ["demo", "--bundled", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(out / "report.html") and (out / "report.html").exists()
    curves = pd.read_csv(out / "curves.csv")
    assert {"Pythia", "OPT", "BLOOM"} <= set(curves["family"])
    lam = curves[
        (curves.task == "lambada_openai") & (curves.family == "Pythia") & (curves.shots == 0) & (curves.metric == "acc")
    ].sort_values("scale")
    # the paragraph quotes the measured curve, not a canned sentence
    assert f"Pythia LAMBADA accuracy rises {lam['value'].iloc[0]:.3f} -> {lam['value'].iloc[-1]:.3f}" in lines[-2]
