"""`mirage theory` end to end: files, columns, figure, report, one-line errors with nothing written."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage import TheorySettings, run_theory
from mirage.cli import app
from mirage.schema.tables import EMERGENCE, THEORY

EMERGENCE_COLUMNS, THEORY_COLUMNS = list(EMERGENCE.names), list(THEORY.names)

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_theory_writes_curves_emergence_crossings_figure_and_report(tmp_path):
    out = tmp_path / "th"
    code, stdout, err = run("theory", "--lengths", "1,3,5", "--points", "60", "--out", out)
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == str(out / "report.html")
    t = pd.read_csv(out / "theory.csv")
    assert list(t.columns) == THEORY_COLUMNS and len(t) == 3 * 60
    assert t["params"].min() == pytest.approx(1e7) and t["params"].max() == pytest.approx(1e12)
    em = pd.read_csv(out / "emergence.csv")
    assert list(em.columns) == EMERGENCE_COLUMNS
    assert set(em["family"]) == {"theory"} and set(em["task"]) == {"L=1", "L=3", "L=5"}
    assert (em["n_models"] == 8).all()
    cross = pd.read_csv(out / "crossings.csv")
    assert cross["params_at_accuracy_0.5"].is_monotonic_increasing
    # the printed crossing matches the file
    assert f"L=5: accuracy reaches 50% at N = {cross['params_at_accuracy_0.5'].iloc[-1]:.3g}" in stdout
    png = (out / "figures" / "theory.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    html = (out / "report.html").read_text()
    assert '<figure class="chart"' in html and 'src="http' not in html  # interactive, self-contained
    assert not list(out.parent.glob(".th*"))  # no temporary leftovers


def test_theory_constants_change_the_curves():
    # the command is a thin layer over run_theory; checking the API here avoids drawing a second figure
    t = run_theory(TheorySettings(c=1e8, alpha=-0.3, lengths=(2,), n_min=1e6, n_max=1e10, points=10)).table
    assert len(t) == 10 and (t["length"] == 2).all()
    np.testing.assert_allclose(t["cross_entropy"], (t["params"] / 1e8) ** -0.3, rtol=1e-12)


@pytest.mark.parametrize(
    "args, source",
    [
        (["--alpha", "0.5"], "alpha"),
        (["--c", "0"], "c"),
        (["--lengths", "1,x"], "--lengths"),
        (["--lengths", "0,2"], "--lengths"),
        (["--n-min", "1e9", "--n-max", "1e8"], "--n-max"),
        (["--points", "1"], "--points"),
        (["--choices", "1"], "n_choices"),
    ],
)
def test_bad_options_fail_in_one_line_and_write_nothing(tmp_path, args, source):
    out = tmp_path / "never"
    code, stdout, err = run("theory", *args, "--out", out)
    assert code == 2
    assert err.startswith(f"error: {source}: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()
