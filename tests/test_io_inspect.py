"""Inspect logs (.eval and .json) written by inspect-ai's own eval() with its mock model (tests/fixtures/inspect)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.io.inputs import ReadOptions, _read_one, read_inputs
from mirage.io.inspect_logs import EXTRA_LINE, LIMITS_NOTE
from mirage.io.models import read_scale_table
from mirage.metrics import compute_sample_metrics

pytest.importorskip("inspect_ai")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "inspect"
LOGS = FIXTURES / "logs"
MODELS = FIXTURES / "models.csv"
JSON_LOG = next(LOGS.glob("*.json"))


@pytest.fixture(scope="module")
def inputs():
    return read_inputs([LOGS], scale_from=str(MODELS), family="mock")


def test_eval_and_json_logs_become_records(inputs):
    rec = inputs.records.to_pandas()
    assert len(rec) == 36 and set(rec["model"]) == {"mock-small", "mock-medium", "mock-large"}
    assert rec.groupby("model")["scale"].first().to_dict() == {"mock-small": 1e6, "mock-medium": 1e7, "mock-large": 1e8}
    row = rec[(rec["model"] == "mock-small") & (rec["sample_id"] == "0")].iloc[0]
    assert (row["prompt"], row["target"], row["output"]) == ("12+7=", "19", "19")
    m = compute_sample_metrics(inputs.records)
    em = m.groupby("model")["exact_match"].sum().to_dict()
    assert em == {"mock-small": 2, "mock-medium": 6, "mock-large": 11}  # the mock's known answers
    # Inspect's own per-sample scores (match: C/I through its value_to_float) agree
    assert rec.groupby("model")["score_match"].sum().to_dict() == em
    assert (rec["answer_match"] == rec["output"]).all()


def test_token_logprobs_are_kept_where_the_log_has_them(inputs):
    rec = inputs.records.to_pandas()
    with_lp = rec[rec["output_token_logprobs"].notna()]
    assert set(with_lp["model"]) == {"mock-small", "mock-medium"}
    first = with_lp.iloc[0]
    assert list(first["output_logprob_tokens"]) == list(first["output"])
    assert all(v <= 0 for v in first["output_token_logprobs"])
    assert LIMITS_NOTE in inputs.notes
    # generated-token log-probabilities are not target log-probabilities: no target metric
    assert "target_logprob" not in compute_sample_metrics(inputs.records).columns


def test_a_json_inspect_log_is_never_taken_for_lm_eval_results():
    data = json.loads(JSON_LOG.read_text())
    assert isinstance(data.get("results"), dict)  # what made it look like lm-eval before
    opts = ReadOptions(scale_from=str(MODELS), scale_table=read_scale_table(MODELS), family="mock")
    kind, table, _ = _read_one(JSON_LOG, opts)
    assert kind == "records" and table.num_rows == 12


def test_scale_from_a_family_yaml(tmp_path):
    lines = ["family: mock", "models:"]
    for name, params in (("mock-small", 1e6), ("mock-medium", 1e7), ("mock-large", 1e8)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        lines += [f"  - name: {name}", f"    path: {name}", f"    params: {params:.0f}"]
    (tmp_path / "family.yaml").write_text("\n".join(lines) + "\n")
    got = read_inputs([LOGS], scale_from=str(tmp_path / "family.yaml"), family="mock")
    assert sorted(set(got.records.column("scale").to_pylist())) == [1e6, 1e7, 1e8]


def test_missing_scale_is_one_line_naming_the_option(tmp_path):
    res = CliRunner().invoke(app, ["analyze", str(LOGS), "--family", "mock", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "--scale-from" in lines[0] and "mockllm/mock-" in lines[0]
    assert not (tmp_path / "o").exists()


def test_without_inspect_ai_one_line_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import fails as if not installed
    eval_log = next(LOGS.glob("*.eval"))
    res = CliRunner().invoke(app, ["analyze", str(eval_log), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and EXTRA_LINE in lines[0] and "mirage[inspect]" in lines[0]


def test_a_broken_log_is_one_line(tmp_path):
    bad = tmp_path / "broken.eval"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MirageInputError, match="not a readable Inspect log"):
        read_inputs([bad], scale_from=str(MODELS))


def test_cli_analyze_reads_the_logs(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "analyze",
            str(LOGS),
            "--family",
            "mock",
            "--scale-from",
            str(MODELS),
            "--out",
            str(tmp_path / "o"),
            "-q",
            "--bootstrap",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_records"] == 36 and summary["n_models"] == 3
