import json

import pyarrow as pa
import pytest

from mirage.errors import MirageInputError
from mirage.io.records import read_records, write_records
from mirage.schema.records import records_from_rows
from mirage.synthetic import synthetic_records


def good(i=0, **kw):
    r = dict(
        family="f",
        model="m",
        scale=1e6,
        task="t",
        sample_id=str(i),
        target="1",
        output="1",
        target_tokens=["1"],
        output_tokens=["1"],
        target_logprobs=[-0.5],
    )
    r.update(kw)
    return r


def test_parquet_round_trip_keeps_extra_columns(tmp_path):
    table = synthetic_records({1e6: 0.5, 1e7: 0.8}, n_samples=5)
    table = table.append_column("seed", pa.array([7] * table.num_rows))
    write_records(table, tmp_path / "r.parquet")
    back = read_records(tmp_path / "r.parquet")
    assert back.num_rows == table.num_rows and "seed" in back.column_names
    assert back.column("target_logprobs").to_pylist() == table.column("target_logprobs").to_pylist()


def test_jsonl_with_token_ids_reads_as_strings(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(json.dumps(good(i, target_tokens=[5], output_tokens=[5])) for i in range(3)))
    t = read_records(p)
    assert t.column("target_tokens").to_pylist() == [["5"]] * 3


@pytest.mark.parametrize(
    "rows,match",
    [
        ([good(0), good(0)], "duplicate"),
        ([good(0, scale=-1.0)], "positive"),
        ([good(0, target_logprobs=[-0.5, -0.1])], "target_logprobs has 2"),
        ([good(0, target_logprobs=[0.7])], "positive log-probabilities"),
        ([good(0), good(1, scale=2e6)], "more than one scale"),
    ],
)
def test_validation_errors(rows, match):
    with pytest.raises(MirageInputError, match=match):
        records_from_rows(rows)


def test_missing_column_is_named(tmp_path):
    p = tmp_path / "r.jsonl"
    r = good()
    del r["task"]
    p.write_text(json.dumps(r) + "\n")
    with pytest.raises(MirageInputError, match="'task'") as e:
        read_records(p)
    assert str(p) in str(e.value)


def test_malformed_jsonl_names_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(good()) + "\n{not json\n")
    with pytest.raises(MirageInputError, match="line 2"):
        read_records(p)


def test_nan_in_jsonl_is_rejected(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(
        '{"family": "f", "model": "m", "scale": NaN, "task": "t", "sample_id": "0", "target": "1", "output": "1"}\n'
    )
    with pytest.raises(MirageInputError, match="NaN"):
        read_records(p)


def test_corrupt_parquet_is_one_clear_error(tmp_path):
    p = tmp_path / "r.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(MirageInputError, match="malformed parquet"):
        read_records(p)
