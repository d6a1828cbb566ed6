import json

import numpy as np
import pandas as pd
import pytest

from mirage.errors import MirageInputError
from mirage.io.inputs import read_inputs
from mirage.io.lm_eval_results import family_from_name, params_from_name, read_lm_eval_json

PYTHIA_LAMBADA_ACC = [0.1846, 0.3284, 0.5162, 0.5620, 0.6161, 0.6472, 0.6728, 0.7046]
PYTHIA_LAMBADA_PPL = [142.43, 38.07, 10.83, 7.92, 6.09, 5.04, 4.45, 3.92]


def lambada(scores, family="Pythia", metric="acc", shots=0):
    s = scores[(scores.family == family) & (scores.task == "lambada_openai") & (scores.metric == metric)]
    if "shots" in s:
        s = s[s.shots == shots]
    return s.sort_values("scale")["value"].to_numpy()


def test_real_pythia_table_reproduces_published_values(pythia_table):
    scores = read_inputs([pythia_table]).scores
    np.testing.assert_allclose(lambada(scores), PYTHIA_LAMBADA_ACC, atol=5e-5)
    np.testing.assert_allclose(lambada(scores, metric="ppl"), PYTHIA_LAMBADA_PPL, atol=6e-3)
    assert set(scores["shots"]) == {0, 5}


def test_real_opt_table(opt_bloom_table):
    acc = lambada(read_inputs([opt_bloom_table]).scores, family="OPT")
    assert acc[0] == pytest.approx(0.3790, abs=5e-5) and acc[-1] == pytest.approx(0.7390, abs=5e-5)


def test_scale_column_choice_and_filter(pythia_table):
    s = read_inputs([pythia_table], scale="nonembedding_params", filters=["shots=5", "family=Pythia"]).scores
    assert set(s["shots"]) == {5} and set(s["family"]) == {"Pythia"}
    assert (s["scale"] == s["nonembedding_params"]).all()


def test_old_lm_eval_results_directory(lm_eval_dir):
    scores = read_inputs([lm_eval_dir], family="pythia").scores
    assert scores["model"].nunique() == 8
    np.testing.assert_allclose(lambada(scores, family="pythia"), PYTHIA_LAMBADA_ACC, atol=5e-5)
    ppl_rows = scores[(scores.task == "lambada_openai") & (scores.metric == "ppl")]
    assert ppl_rows["stderr"].notna().all()
    # scales parsed from model names: 70m ... 12b
    assert scores["scale"].min() == pytest.approx(70e6) and scores["scale"].max() == pytest.approx(12e9)
    assert set(scores["step"]) == {143000}


def test_lm_eval_family_from_name_merges_precision_suffix(lm_eval_dir):
    scores = read_inputs([lm_eval_dir]).scores
    assert scores["family"].unique().tolist() == ["pythia-v1.1"]


def test_lm_eval_04_format(tmp_path):
    for name, n, acc in [
        ("org/tiny-1m", 1_000_000, 0.1),
        ("org/tiny-10m", 10_000_000, 0.4),
        ("org/tiny-100m", 100_000_000, 0.7),
    ]:
        data = {
            "results": {
                "arith": {
                    "alias": "arith",
                    "exact_match,none": acc,
                    "exact_match_stderr,none": "N/A",
                    "acc,none": acc / 2,
                    "acc_stderr,none": 0.01,
                }
            },
            "n-shot": {"arith": 3},
            "n-samples": {"arith": {"original": 200, "effective": 200}},
            "config": {"model": "hf", "model_args": f"pretrained={name}", "model_num_parameters": n},
            "model_name": name,
        }
        (tmp_path / f"{name.split('/')[-1]}.json").write_text(json.dumps(data))
    scores = read_inputs([tmp_path]).scores
    em = scores[scores.metric == "exact_match"].sort_values("scale")
    assert em["value"].tolist() == [0.1, 0.4, 0.7]
    assert em["scale"].tolist() == [1e6, 1e7, 1e8]
    assert (em["shots"] == 3).all() and em["stderr"].isna().all() and (em["n_samples"] == 200).all()
    assert scores["family"].unique().tolist() == ["tiny"]


def test_lm_eval_without_any_scale_says_so(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"results": {"t": {"acc": 0.5}}, "config": {"model_args": "pretrained=mystery"}}))
    with pytest.raises(MirageInputError, match="scale missing for model 'mystery'"):
        read_lm_eval_json(p)


def test_size_parsing():
    assert params_from_name("EleutherAI/pythia-1.4b-deduped") == pytest.approx(1.4e9)
    assert params_from_name("opt-125m") == pytest.approx(125e6)
    assert params_from_name("gpt2") is None
    assert family_from_name("pythia-1.4b-deduped") == "pythia-deduped"


def write(tmp_path, frame, name="s.csv"):
    p = tmp_path / name
    frame.to_csv(p, index=False)
    return p


def small_table():
    return pd.DataFrame(
        dict(family="f", model=["a", "b", "c"], params=[1e6, 1e7, 1e8], task="t", metric="acc", value=[0.1, 0.2, 0.3])
    )


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda f: f.drop(columns="value"), "missing column"),
        (lambda f: f.assign(value=[0.1, np.nan, 0.3]), "NaN"),
        (lambda f: f.assign(params=[1e6, 0, 1e8]), "positive"),
        (lambda f: f.drop(columns="params"), "scale column 'params' missing"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "duplicate"),
        (lambda f: f.assign(model=["a", "a", "a"], task=["t", "u", "v"], params=1e6), "only one model"),
        (lambda f: f.assign(family=["x", "y", "z"]), "each of the 3 families has only one model"),
    ],
)
def test_bad_score_tables(tmp_path, mutate, match):
    p = write(tmp_path, mutate(small_table()))
    with pytest.raises(MirageInputError, match=match) as e:
        read_inputs([p])
    assert "s.csv" in str(e.value) or "famil" in str(e.value) or "model" in str(e.value)


def test_malformed_csv_and_missing_path(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('family,model\n"a,b\n')
    with pytest.raises(MirageInputError, match="bad.csv"):
        read_inputs([p])
    with pytest.raises(MirageInputError, match="no such file"):
        read_inputs([tmp_path / "nope.csv"])


def test_parquet_score_table(tmp_path):
    p = tmp_path / "s.parquet"
    small_table().to_parquet(p)
    assert len(read_inputs([p]).scores) == 3


def test_unknown_filter_column(tmp_path):
    with pytest.raises(MirageInputError, match="no column 'nope'"):
        read_inputs([write(tmp_path, small_table())], filters=["nope=1"])


def test_records_scale_column_choice(tmp_path):
    import pyarrow as pa

    from mirage.io.records import write_records
    from mirage.synthetic import synthetic_records

    t = synthetic_records({1e6: 0.5, 1e7: 0.7, 1e8: 0.9}, n_samples=4)
    t = t.append_column("step", pa.array([1000.0 * (i // 4 + 1) for i in range(t.num_rows)]))
    write_records(t, tmp_path / "r.parquet")
    # a Parquet record file is read lazily (a RecordSource, one fragment per row group)
    by_params = read_inputs([tmp_path / "r.parquet"]).records.to_table()
    assert sorted(set(by_params.column("scale").to_pylist())) == [1e6, 1e7, 1e8]
    by_step = read_inputs([tmp_path / "r.parquet"], scale="step").records.to_table()
    assert sorted(set(by_step.column("scale").to_pylist())) == [1000.0, 2000.0, 3000.0]
    with pytest.raises(MirageInputError, match="no scale column 'train_flops'"):
        read_inputs([tmp_path / "r.parquet"], scale="train_flops")


def test_directory_side_files_are_skipped_but_named_files_must_be_readable(tmp_path):
    small_table().to_csv(tmp_path / "scores.csv", index=False)
    # a parameter table with integers beyond int64 (training FLOPs), as in shared/data/real
    (tmp_path / "params.csv").write_text("size,train_flops\n70m,126722597751619584000\n")
    inputs = read_inputs([tmp_path])
    assert len(inputs.scores) == 3 and any("params.csv" in n for n in inputs.notes)
    with pytest.raises(MirageInputError, match="params.csv: not a score table"):
        read_inputs([tmp_path / "params.csv"])


def test_directory_scan_passes_over_mirage_outputs(tmp_path):
    small_table().to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame(dict(family=["f"], task=["t"], metric=["acc"], emergence_score=[1.0])).to_csv(
        tmp_path / "emergence.csv", index=False
    )
    assert len(read_inputs([tmp_path]).scores) == 3
