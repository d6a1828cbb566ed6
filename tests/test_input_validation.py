"""Input validation at the boundary (issue 12): every bad value named with its row in one line,
and no single value that poisons other samples."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.io.inputs import read_inputs
from mirage.metrics import RecordView, compute_sample_metrics
from mirage.synthetic import synthetic_records


def one_error_line(args, tmp_path) -> str:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert not out.exists()
    return lines[0]


def table(**columns) -> pd.DataFrame:
    base = dict(
        family="f", model=["a", "b", "c"], params=[1e6, 1e7, 1e8], task="t", metric="acc", value=[0.1, 0.2, 0.3]
    )
    base.update(columns)
    return pd.DataFrame(base)


# ----------------------------------------------------------------------------- -inf and per-row sums


def test_list_sums_reduce_each_row_on_its_own():
    # built without validation: -inf in the first row must not reach any other row
    t = pa.table(
        {"target_logprobs": pa.array([[-np.inf, -1.0], [-0.5, -0.25], [], None, [-2.0]], type=pa.list_(pa.float64()))}
    )
    sums = RecordView(t).list_sums("target_logprobs")
    assert sums[0] == -np.inf and sums[1] == -0.75 and sums[2] == 0.0 and np.isnan(sums[3]) and sums[4] == -2.0
    big = pa.table({"target_logprobs": pa.array([[-1e308, -1e308], [-1.0]], type=pa.list_(pa.float64()))})
    assert RecordView(big).list_sums("target_logprobs")[1] == -1.0  # no cancellation across rows


def test_minus_inf_from_parquet_is_rejected_with_the_row_named(tmp_path):
    t = synthetic_records({1e6: 0.5, 1e7: 0.7, 1e8: 0.9}, n_samples=5)
    lps = t.column("target_logprobs").to_pylist()
    lps[7] = [-np.inf] + lps[7][1:]
    t = t.set_column(
        t.column_names.index("target_logprobs"), "target_logprobs", pa.array(lps, type=pa.list_(pa.float64()))
    )
    path = tmp_path / "r.parquet"
    pq.write_table(t, path)
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert "row 8" in line and "-inf" in line and str(path) in line


def test_minus_1e400_jsonl_literal_is_rejected_with_the_row_named(tmp_path):
    rows = [
        dict(
            family="f",
            model=m,
            scale=s,
            task="t",
            sample_id=str(i),
            target="1",
            output="1",
            target_tokens=["1"],
            output_tokens=["1"],
            target_logprobs=[-0.1],
        )
        for m, s in (("a", 1e6), ("b", 1e7))
        for i in range(3)
    ]
    text = "\n".join(json.dumps(r) for r in rows).replace(
        '"target_logprobs": [-0.1]}', '"target_logprobs": [-1e400]}', 1
    )
    path = tmp_path / "r.jsonl"
    path.write_text(text + "\n")
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert "row 1" in line and "-inf" in line


def test_finite_records_are_unaffected_by_one_extreme_sample():
    t = synthetic_records({1e6: 0.5, 1e7: 0.7}, n_samples=4)
    lps = t.column("target_logprobs").to_pylist()
    lps[0] = [-1e300] * len(lps[0])  # finite but extreme
    t = t.set_column(
        t.column_names.index("target_logprobs"), "target_logprobs", pa.array(lps, type=pa.list_(pa.float64()))
    )
    m = compute_sample_metrics(t)
    assert m["target_logprob"].iloc[1:].notna().all() and np.isfinite(m["target_logprob"].iloc[1:]).all()


# ----------------------------------------------------------------------------- score-table columns


@pytest.mark.parametrize(
    "column, values, message",
    [
        ("shots", [0, 1.5, 0], "column 'shots' must be a whole number >= 0"),
        ("shots", ["0", "five", "0"], "column 'shots' must be a whole number >= 0"),
        ("shots", [0, -1, 0], "column 'shots' must be a whole number >= 0"),
        ("stderr", [0.1, -0.5, 0.1], "column 'stderr' must be a number >= 0"),
        ("stderr", [0.1, "abc", 0.1], "column 'stderr' must be a number >= 0"),
        ("n_samples", [100, -10, 100], "column 'n_samples' must be a whole number > 0"),
        ("n_samples", [100, 2.5, 100], "column 'n_samples' must be a whole number > 0"),
        (
            "metric_kind",
            ["linear", "bogus", "linear"],
            "column 'metric_kind' must be one of discontinuous, nonlinear, linear",
        ),
    ],
)
def test_bad_score_table_values_name_the_row(tmp_path, column, values, message):
    path = tmp_path / "s.csv"
    table(**{column: values}).to_csv(path, index=False)
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert message in line and "row 3" in line and str(path) in line


def test_empty_shots_mean_not_applicable(tmp_path):
    path = tmp_path / "s.csv"
    table(shots=[None, None, None], stderr=[0.01, None, 0.02], n_samples=[100, 100, None]).to_csv(path, index=False)
    s = read_inputs([path]).scores
    assert s["shots"].isna().all() and s["stderr"].isna().sum() == 1


# ----------------------------------------------------------------------------- encodings and malformed side inputs


def test_non_utf8_jsonl_is_one_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        json.dumps({"family": "f", "model": "m", "sample_id": "1", "target": "caf"}).encode()[:-2] + b'\xe9"}\n'
    )
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert "not a UTF-8 text file" in line and "line 1" in line


def test_non_utf8_csv_is_one_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(
        "family,model,params,task,metric,value\nf,a,1e6,t,acc,0.1\n".encode() + b"f,\xff\xfe,1e7,t,acc,0.2\n"
    )
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert str(path) in line and "malformed CSV" in line


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update({"n-shot": [0, 5]}), "'n-shot' must be an object"),
        (lambda d: d.update(config="pretrained=x"), "'config' must be an object"),
    ],
)
def test_lm_eval_json_with_odd_fields_is_one_line(tmp_path, mutate, message):
    data = {
        "results": {"t": {"acc,none": 0.5}},
        "n-shot": {"t": 0},
        "config": {"model_args": "pretrained=m-1m", "model_num_parameters": 1e6},
    }
    mutate(data)
    path = tmp_path / "results_x.json"
    path.write_text(json.dumps(data))
    line = one_error_line(["analyze", str(path)], tmp_path)
    assert message in line and str(path) in line


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ('model,params\n"a,1e6\n', "malformed CSV"),
        ("name,params\na,1e6\n", "needs a 'model' column"),
        ("model,params\na,-3\n", "must be a positive number"),
        ("model,params\n", "CSV has no rows"),
    ],
)
def test_a_bad_scale_from_csv_is_one_line(tmp_path, content, message):
    data = {"results": {"t": {"acc,none": 0.5}}, "config": {"model_args": "pretrained=a"}}
    (tmp_path / "results_a.json").write_text(json.dumps(data))
    scales = tmp_path / "scales.csv"
    scales.write_text(content)
    line = one_error_line(["analyze", str(tmp_path / "results_a.json"), "--scale-from", str(scales)], tmp_path)
    assert message in line and str(scales) in line


# ----------------------------------------------------------------------------- --filter before per-file checks


def test_filter_applies_before_scale_validation(tmp_path):
    """A training table where only the 5-shot rows have a step: --scale step --filter shots=5
    must not fail on the 0-shot rows it drops."""
    rows = table(shots=[5, 5, 5], step=[1000, 2000, 4000])
    zero = table(shots=[0, 0, 0], step=[None, None, None])
    path = tmp_path / "train.csv"
    pd.concat([rows, zero]).to_csv(path, index=False)
    s = read_inputs([path], scale="step", filters=["shots=5"]).scores
    assert sorted(s["scale"]) == [1000.0, 2000.0, 4000.0] and set(s["shots"]) == {5}
    with pytest.raises(MirageInputError, match="scale column 'step'"):
        read_inputs([path], scale="step")
    with pytest.raises(MirageInputError, match="no rows left"):
        read_inputs([path], scale="step", filters=["shots=3"])
    with pytest.raises(MirageInputError, match="no column 'nope'"):
        read_inputs([path], scale="step", filters=["nope=1"])


# ----------------------------------------------------------------------------- directory scans


def test_directory_scan_reads_underscore_folders_but_not_hidden_ones_or_mirage_outputs(tmp_path):
    (tmp_path / "__tmp__ckpt").mkdir()
    table().to_csv(tmp_path / "__tmp__ckpt" / "scores.csv", index=False)
    (tmp_path / "_-large").mkdir()
    table(family="g").to_csv(tmp_path / "_-large" / "more.csv", index=False)
    (tmp_path / ".out.tmp").mkdir()
    table(family="hidden").to_csv(tmp_path / ".out.tmp" / "scores.csv", index=False)
    table(family="own").to_csv(tmp_path / "curves.csv", index=False)
    s = read_inputs([tmp_path]).scores
    assert set(s["family"]) == {"f", "g"}
