"""The command line behaves like its neighbours (lm-eval, Inspect): ``--version``; progress only on
stderr, as plain lines when stderr is not a terminal (no carriage returns in a log); ``--json``
prints the run's summary as one JSON document on stdout; ``--quiet`` on every command.

Commands run as a user runs them (a subprocess with stdout and stderr sent to files), or through
typer's runner where only stdout matters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from report_tables import many_families_table
from typer.testing import CliRunner

from mirage.cli import app

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("analyze", "demo", "theory", "meta", "forecast", "vision", "eval", "train-family")


def _mirage(*args: str, cwd: Path, columns: int | None = None) -> tuple[int, str, str]:
    """Run ``python -m mirage.cli ARGS`` with stdout and stderr sent to files, as ``> log 2> err``
    (``columns``: the width tables are printed in)."""
    out, err = cwd / "stdout.log", cwd / "stderr.log"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1")
    if columns:
        env["COLUMNS"] = str(columns)
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.run(
            [sys.executable, "-m", "mirage.cli", *args], stdout=o, stderr=e, cwd=cwd, env=env, timeout=600
        )
    return proc.returncode, out.read_text(), err.read_text()


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scores") / "scores.csv"
    many_families_table(6, n_tasks=3).to_csv(path, index=False)
    return path


def test_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mirage {version('mirage')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_quiet_and_json(command: str):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--quiet" in result.stdout and "--json" in result.stdout, f"{command} lacks --quiet or --json"


def test_analyze_progress_is_plain_lines_on_stderr_and_json_on_stdout(scores: Path, tmp_path: Path):
    code, out, err = _mirage(
        "analyze", str(scores), "--out", str(tmp_path / "out"), "--bootstrap", "0", "--json", cwd=tmp_path
    )
    assert code == 0, err
    summary = json.loads(out)  # stdout is one JSON document, nothing else
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdict_counts"] == written["verdict_counts"]
    assert summary["report"] == str(tmp_path / "out" / "report.html")
    assert "\r" not in err and "\x1b[" not in err, "progress bars (carriage returns, escapes) in a log file"
    assert "figures: " in err and "done in" in err  # plain progress lines
    assert "verdicts" in err  # the human summary went to stderr


def test_forecast_progress_is_plain_lines_on_stderr_and_json_on_stdout(tmp_path: Path):
    from mirage import write_records
    from mirage.synthetic import TruthSpec, known_truth_records

    records = tmp_path / "records.parquet"
    write_records(
        known_truth_records(TruthSpec("smooth", n_models=6, decades=3, lengths=(4,), n_samples=200, seed=1)), records
    )
    code, out, err = _mirage(
        "forecast",
        str(records),
        "--backtest",
        "2",
        "--bootstrap",
        "30",
        "--out",
        str(tmp_path / "fc"),
        "--json",
        cwd=tmp_path,
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_groups"] == 1 and summary["report"] == str(tmp_path / "fc" / "report.html")
    assert "\r" not in err and "\x1b[" not in err
    assert "forecasts: " in err and "back-test" in err  # a plain progress line, then the human summary


def test_analyze_summary_lists_verdicts_in_csv_order_and_counts_insufficient(scores: Path, tmp_path: Path):
    code, out, err = _mirage(
        "analyze", str(scores), "--out", str(tmp_path / "out"), "--bootstrap", "0", cwd=tmp_path, columns=250
    )
    assert code == 0, err
    import pandas as pd

    verdicts = pd.read_csv(tmp_path / "out" / "verdicts.csv")
    listed = verdicts[verdicts["verdict"] != "insufficient evidence"]["verdict"].tolist()
    order = [line for line in out.splitlines() if any(v in line for v in set(listed))]
    seen = [
        next(v for v in ("not explained by metric choice", "explained by metric", "no apparent emergence") if v in line)
        for line in order[: len(listed)]
    ]
    assert seen == listed[: len(seen)]
    n_insufficient = int((verdicts["verdict"] == "insufficient evidence").sum())
    assert n_insufficient and f"{n_insufficient} insufficient evidence (not listed" in out
    assert "\r" not in err and out.strip().endswith("report.html")


def test_quiet_prints_only_the_report_path(scores: Path, tmp_path: Path):
    code, out, err = _mirage(
        "analyze", str(scores), "--out", str(tmp_path / "out"), "--bootstrap", "0", "--quiet", cwd=tmp_path
    )
    assert code == 0
    assert out.strip() == str(tmp_path / "out" / "report.html")
    assert err == ""


def test_theory_and_meta_json(scores: Path, tmp_path: Path):
    code, out, err = _mirage("theory", "--out", str(tmp_path / "th"), "--json", "--quiet", cwd=tmp_path)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["settings"]["alpha"] == -0.5 and len(summary["crossings"]) == 5
    code, out, err = _mirage("meta", str(scores), "--out", str(tmp_path / "meta"), "--json", cwd=tmp_path)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_curves"] > 0 and summary["report"].endswith("report.html")
    assert "\r" not in err


def test_static_reports_embed_png_and_no_plotly(scores: Path, tmp_path: Path):
    from mirage.report.interactive import plotly_js

    head_of_plotly = plotly_js()[:300]
    for command, args in (("analyze", [str(scores), "--bootstrap", "0"]), ("theory", [])):
        static, interactive = tmp_path / f"{command}-static", tmp_path / f"{command}-interactive"
        result = CliRunner().invoke(app, [command, *args, "--out", str(static), "--static", "--quiet"])
        assert result.exit_code == 0, result.output
        page = (static / "report.html").read_text()
        assert "data:image/png;base64," in page and head_of_plotly not in page
        assert '<script type="application/json"' not in page  # no chart specs
        result = CliRunner().invoke(app, [command, *args, "--out", str(interactive), "--quiet"])
        assert result.exit_code == 0, result.output
        page = (interactive / "report.html").read_text()
        assert page.count(head_of_plotly) == 1  # plotly.js inlined, once
        markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # plotly.js has icons of its own
        assert '<figure class="chart"' in markup and "data:image/png" not in markup
        # the PNG figures for papers are written either way
        assert sorted(p.name for p in (static / "figures").iterdir()) == sorted(
            p.name for p in (interactive / "figures").iterdir()
        )


@pytest.mark.slow
def test_demo_quick_writes_no_carriage_returns(tmp_path: Path):
    """``mirage demo --quick > log 2> err``: lines on stderr, no bars; the summary and path on stdout."""
    code, out, err = _mirage("demo", "--quick", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert err.count("\r") == 0, f"{err.count(chr(13))} carriage returns on stderr"
    assert "\x1b[" not in err
    assert out.strip().endswith("report.html") and "Prediction 1" in out
    assert "done in" in err  # progress was reported, as lines
