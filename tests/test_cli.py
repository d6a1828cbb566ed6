import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.io.records import write_records
from mirage.synthetic import power_law_p, synthetic_records

runner = CliRunner()
SCALES = np.geomspace(1e7, 1e11, 6)


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "records.parquet"
    write_records(synthetic_records(power_law_p(SCALES, alpha=-0.35), n_samples=150, lengths=(8,), seed=0), path)
    return path


def test_analyze_records_end_to_end(records_file, tmp_path):
    code, out, err = run("analyze", records_file, "--out", tmp_path / "o", "--bootstrap", "100", "--max-figures", "1")
    assert code == 0, err
    assert out.strip().endswith("report.html")
    v = pd.read_csv(tmp_path / "o" / "verdicts.csv")
    assert v.set_index("discontinuous_metric").loc["exact_match", "verdict"] == "explained by metric"
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_records"] == 900 and summary["settings"]["bootstrap"] == 100


def test_analyze_score_table_with_scale_and_filter(pythia_table, tmp_path):
    code, _, err = run(
        "analyze",
        pythia_table,
        "--out",
        tmp_path / "o",
        "--filter",
        "task=lambada_openai",
        "--scale",
        "nonembedding_params",
        "--max-figures",
        "1",
        "-q",
    )
    assert code == 0, err
    c = pd.read_csv(tmp_path / "o" / "curves.csv")
    assert set(c["task"]) == {"lambada_openai"} and (c["scale"] == c["nonembedding_params"]).all()


def test_unknown_metric_names_are_reported(tmp_path):
    f = pd.DataFrame(
        dict(
            family="f",
            model=list("abcd"),
            params=[1e6, 1e7, 1e8, 1e9],
            task="t",
            metric="zorblax",
            value=[0.1, 0.2, 0.3, 0.4],
        )
    )
    f.to_csv(tmp_path / "s.csv", index=False)
    code, out, _ = run("analyze", tmp_path / "s.csv", "--out", tmp_path / "o", "--max-figures", "0")
    assert code == 0 and "zorblax" in out
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["unknown_metrics"] == ["zorblax"]
    code, _, _ = run(
        "analyze", tmp_path / "s.csv", "--out", tmp_path / "o2", "--metric-kind", "zorblax=linear", "--max-figures", "0"
    )
    assert code == 0
    assert pd.read_csv(tmp_path / "o2" / "curves.csv")["metric_kind"].eq("linear").all()


def bad_inputs(tmp_path, records_file):
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "bad.parquet").write_bytes(b"garbage")
    one = pd.DataFrame(dict(family="f", model="a", params=1e6, task="t", metric="acc", value=[0.5]))
    one.to_csv(tmp_path / "one.csv", index=False)
    return {
        "missing path": [tmp_path / "nope.csv"],
        "malformed json": [tmp_path / "bad.json"],
        "malformed parquet": [tmp_path / "bad.parquet"],
        "one model": [tmp_path / "one.csv"],
        "unknown metric": [records_file, "--metrics", "exact_match,bogus"],
        "bad kind": [records_file, "--metric-kind", "exact_match=wobbly"],
        "bad regex": [records_file, "--answer-regex", "(unclosed"],
    }


@pytest.mark.parametrize(
    "case",
    ["missing path", "malformed json", "malformed parquet", "one model", "unknown metric", "bad kind", "bad regex"],
)
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, records_file):
    args = bad_inputs(tmp_path, records_file)[case]
    out_dir = tmp_path / "out"
    code, out, err = run("analyze", *args, "--out", out_dir)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert not out_dir.exists()


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mirage.cli", "analyze", str(tmp_path / "missing.csv")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.csv'}: no such file or directory"]


@pytest.mark.parametrize("command", [["analyze", "RECORDS"], ["theory"], ["demo", "--quick"]])
def test_output_under_a_file_is_one_line_exit_2(command, tmp_path, records_file):
    """An --out that cannot be a directory (a file stands in its path) is the user's input: one
    line naming the path, exit 2, and nothing written beside the file."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    args = [records_file if a == "RECORDS" else a for a in command]
    code, out, err = run(*args, "--out", blocker / "sub")
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == f"error: {blocker}: a file stands where an output directory is needed"
    assert "Traceback" not in err + out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["afile", *([records_file.name] if records_file.parent == tmp_path else [])]
    )
