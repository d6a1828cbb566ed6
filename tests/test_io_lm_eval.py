"""lm-evaluation-harness 0.4.x output directories, as lm-eval 0.4.13 wrote them (tests/fixtures/lm_eval_04)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.io.inputs import read_inputs
from mirage.io.lm_eval_samples import LIMITS_NOTE
from mirage.metrics import compute_sample_metrics, metric_kind

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OUT = FIXTURES / "lm_eval_04" / "out"


@pytest.fixture(scope="module")
def inputs():
    return read_inputs([OUT])


@pytest.fixture(scope="module")
def metrics(inputs):
    return compute_sample_metrics(inputs.records)


def results_files() -> dict[str, dict]:
    out = {}
    for f in sorted(OUT.glob("*/results_*.json")):
        data = json.loads(f.read_text())
        out[data["model_name"].split("/")[-1]] = data
    return out


def samples(model_dir_suffix: str, task: str) -> list[dict]:
    path = next(OUT.glob(f"*{model_dir_suffix}/samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_output_directory_is_read_as_lm_eval_wrote_it(inputs):
    # lm-eval names a local checkpoint's folder __tmp__...: it must not be skipped
    assert all(p.name.startswith("__tmp__") for p in OUT.iterdir())
    assert sorted(inputs.records.column("model").unique().to_pylist()) == [
        "mirage-tiny-16k",
        "mirage-tiny-45k",
        "mirage-tiny-5.7k",
    ]
    tasks = set(inputs.records.column("task").to_pylist())
    assert tasks == {
        "mirage_gen",
        "mirage_gen[first-number]",
        "mirage_mc",
        "mirage_mc_words",
        "mirage_ll",
        "mirage_rolling",
    }
    assert inputs.records.num_rows == 3 * 6 * 16
    # records and results of one run share family, model and scale (config.model_num_parameters)
    scales = dict(zip(inputs.records.column("model").to_pylist(), inputs.records.column("scale").to_pylist()))
    for model, data in results_files().items():
        assert scales[model] == data["config"]["model_num_parameters"]
    assert set(inputs.records.column("family").to_pylist()) == {"mirage-tiny"}


def test_multiple_choice_grade_and_brier_score_equal_lm_evals_own_acc_and_brier(inputs, metrics):
    """lm-eval's acc: argmax of the option log-likelihoods == gold; its brier_score: mean over
    samples of sum over options of (softmax(lls) - onehot(gold))**2 (lm_eval/api/metrics.py
    brier_score). mirage computes both from the records; it counts a tied maximum as wrong
    where np.argmax takes the first option, so the comparison first checks there is no tie."""
    mat = {}
    for row in inputs.records.to_pylist():
        if row["choice_logprobs"] is not None:
            lps = row["choice_logprobs"]
            assert lps.count(max(lps)) == 1  # no ties: both definitions agree sample by sample
            mat[(row["model"], row["task"], row["sample_id"])] = row
    assert len(mat) == 3 * 2 * 16
    compared = 0
    for model, data in results_files().items():
        for task in ("mirage_mc", "mirage_mc_words"):
            m = metrics[(metrics["model"] == model) & (metrics["task"] == task)]
            assert len(m) == 16
            res = data["results"][task]
            assert abs(m["multiple_choice_grade"].mean() - res["acc,none"]) < 1e-9
            compared += 1
            if "brier_score,none" in res:
                assert abs(m["brier_score"].mean() - res["brier_score,none"]) < 1e-9
                compared += 1
    assert compared == 9
    # and sample by sample against lm-eval's logged per-sample acc
    rec = inputs.records.to_pandas()
    mc = rec[rec["lm_eval_output_type"] == "multiple_choice"].merge(
        metrics[["model", "task", "sample_id", "multiple_choice_grade"]], on=["model", "task", "sample_id"]
    )
    assert (mc["multiple_choice_grade"] == mc["lm_eval_acc"]).all()
    # the label-index task and the answer-text task both recover the right option
    first = samples("16k", "mirage_mc")[0]
    row = mat[("mirage-tiny-16k", "mirage_mc", str(first["doc_id"]))]
    assert row["correct_choice"] == first["doc"]["label"]
    words = samples("16k", "mirage_mc_words")[0]
    row = mat[("mirage-tiny-16k", "mirage_mc_words", str(words["doc_id"]))]
    assert row["choices"][row["correct_choice"]].strip() == words["doc"]["word_answer"]


def test_generation_samples_honour_the_answer_filter(inputs, metrics):
    rec = inputs.records.to_pandas()
    raw = samples("45k", "mirage_gen")
    by_filter = {(s["filter"], str(s["doc_id"])): s for s in raw}
    gen = rec[(rec["model"] == "mirage-tiny-45k") & rec["task"].str.startswith("mirage_gen")]
    assert len(gen) == 32
    for r in gen.itertuples(index=False):
        s = by_filter[(r.answer_filter, r.sample_id)]
        assert r.task == ("mirage_gen" if r.answer_filter == "none" else "mirage_gen[first-number]")
        assert r.output == s["filtered_resps"][0] and r.raw_output == s["resps"][0][0]
        assert r.target == s["target"] and list(r.target_tokens) == list(s["target"])
    filtered = gen[gen["answer_filter"] == "first-number"]
    assert (filtered["output"] != filtered["raw_output"]).any()  # the filter really changed answers
    assert filtered["output"].str.fullmatch(r"\d+|\[invalid\]").all()
    m = metrics[metrics["task"].str.startswith("mirage_gen")].merge(
        rec[["model", "task", "sample_id", "lm_eval_exact_match"]], on=["model", "task", "sample_id"]
    )
    assert (m["exact_match"] == m["lm_eval_exact_match"]).all()
    assert m["token_edit_distance"].notna().all()


def test_log_likelihood_samples_become_records_with_their_summed_logprob(inputs, metrics):
    rec = inputs.records.to_pandas()
    ll = samples("5.7k", "mirage_ll")
    rows = rec[(rec["model"] == "mirage-tiny-5.7k") & (rec["task"] == "mirage_ll")].set_index("sample_id")
    m = metrics[(metrics["model"] == "mirage-tiny-5.7k") & (metrics["task"] == "mirage_ll")].set_index("sample_id")
    for s in ll:
        sid = str(s["doc_id"])
        value = float(s["filtered_resps"][0][0])
        assert rows.loc[sid, "target_logprob_sum"] == value
        assert rows.loc[sid, "target_is_greedy"] == (s["filtered_resps"][0][1] == "True")
        assert m.loc[sid, "target_logprob"] == value
        assert m.loc[sid, "target_prob"] == pytest.approx(np.exp(value), rel=1e-12)
        # per-token mean: the sum over the target's units (characters without --tokenizer)
        assert m.loc[sid, "target_mean_logprob"] == pytest.approx(value / len(s["arguments"]["gen_args_0"]["arg_1"]))
    rolling = metrics[metrics["task"] == "mirage_rolling"]
    assert rolling["target_logprob"].notna().all() and rolling["target_mean_logprob"].notna().all()
    # lm-eval's perplexity is exp(-mean ll): the records reproduce it
    for model, data in results_files().items():
        lls = rec[(rec["model"] == model) & (rec["task"] == "mirage_ll")]["target_logprob_sum"]
        assert np.exp(-lls.mean()) == pytest.approx(data["results"]["mirage_ll"]["perplexity,none"], rel=1e-9)


def test_tokenizer_option_sets_the_units_of_token_counts(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted(
        {
            w
            for line in (OUT.parent / "tasks" / "data.jsonl").read_text().splitlines()
            for w in json.loads(line)["text"].split()
        }
    )
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(["<unk>"] + words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>").save_pretrained(tmp_path / "tok")
    got = read_inputs([OUT], tokenizer=str(tmp_path / "tok"))
    rec = got.records.to_pandas()
    rolling = rec[rec["task"] == "mirage_rolling"]
    assert all(list(t) == target.split() for t, target in zip(rolling["target_tokens"], rolling["target"]))
    m = compute_sample_metrics(got.records)
    r = m[m["task"] == "mirage_rolling"].merge(
        rolling[["model", "sample_id", "target_logprob_sum", "target"]], on=["model", "sample_id"]
    )
    assert np.allclose(r["target_mean_logprob"], r["target_logprob_sum"] / r["target"].str.split().str.len())
    assert any(f"tokens of {tmp_path / 'tok'}" in n for n in got.notes)
    with pytest.raises(MirageInputError, match="cannot load tokenizer"):
        read_inputs([OUT], tokenizer=str(tmp_path / "missing"))


def test_notes_say_what_cannot_be_computed_and_in_what_units(inputs):
    assert LIMITS_NOTE in inputs.notes
    assert any("characters (no --tokenizer given)" in n for n in inputs.notes)


def test_results_json_filters_kinds_directions_and_non_metric_keys(inputs):
    s = inputs.scores
    gen = s[s["task"] == "mirage_gen"]
    assert set(gen["metric"]) == {"exact_match[first-number]", "exact_match[reported]"}
    assert metric_kind("exact_match[first-number]")[0] == "discontinuous"
    assert metric_kind("exact_match,first-number")[0] == "discontinuous"
    assert not s["metric"].isin(["sample_len", "alias", "name"]).any()
    direction = s.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    assert direction["perplexity"] is False and direction["acc"] is True and direction["bits_per_byte"] is False
    # lm-eval's brier_score is recomputed from the records (same definition), not read twice
    assert "brier_score" not in set(s["metric"])
    assert any("brier_score" in n and "per-sample records" in n for n in inputs.notes)


def test_higher_is_better_from_the_file_wins_over_the_registry(tmp_path):
    for i, (name, n) in enumerate([("m-1m", 1e6), ("m-10m", 1e7)]):
        data = {
            "results": {"t": {"alias": "t", "sample_len": 50, "acc,none": 0.1 * (i + 1), "acc_stderr,none": "N/A"}},
            "higher_is_better": {"t": {"acc": False}},
            "n-shot": {"t": 0},
            "config": {"model_args": f"pretrained={name}", "model_num_parameters": n},
            "model_name": name,
        }
        (tmp_path / f"results_{i}.json").write_text(json.dumps(data))
    res = CliRunner().invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    assert set(curves["metric"]) == {"acc"} and not curves["higher_is_better"].any()


def test_bracketed_names_survive_the_terminal_output(tmp_path):
    for i, (name, n) in enumerate([("m-1m", 1e6), ("m-10m", 1e7)]):
        data = {
            "results": {"t": {"novel_score,first-number": 0.1 * (i + 1)}},
            "n-shot": {"t": 0},
            "config": {"model_args": f"pretrained={name}", "model_num_parameters": n},
            "model_name": name,
        }
        (tmp_path / f"results_{i}.json").write_text(json.dumps(data))
    res = CliRunner().invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "novel_score[first-number]" in res.output  # not eaten as rich markup


@pytest.mark.slow  # analyze and meta of a whole lm-eval directory (~45 s)
def test_cli_analyze_and_meta_read_the_directory(tmp_path):
    res = CliRunner().invoke(app, ["analyze", str(OUT), "--out", str(tmp_path / "a"), "-q", "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert LIMITS_NOTE in summary["notes"] and summary["has_records"]
    curves = pd.read_csv(tmp_path / "a" / "curves.csv")
    assert {"multiple_choice_grade", "brier_score", "exact_match", "target_logprob", "acc"} <= set(curves["metric"])
    res = CliRunner().invoke(app, ["meta", str(OUT), "--out", str(tmp_path / "m"), "-q"])
    assert res.exit_code == 0, res.output
    assert LIMITS_NOTE in json.loads((tmp_path / "m" / "summary.json").read_text())["notes"]


def test_samples_without_their_results_file_take_the_model_from_the_folder(tmp_path):
    for d in OUT.iterdir():
        (tmp_path / d.name).mkdir()
        for f in d.glob("samples_mirage_mc_2*.jsonl"):
            (tmp_path / d.name / f.name).write_bytes(f.read_bytes())
    got = read_inputs([tmp_path], scale_from="name")
    assert sorted(set(got.records.column("scale").to_pylist())) == [5.7e3, 16e3, 45e3]
    assert any("no results file beside it" in n for n in got.notes)


def test_an_inconsistent_multiple_choice_sample_is_one_line(tmp_path):
    src = next(OUT.glob("*16k/samples_mirage_mc_2*.jsonl"))
    folder = tmp_path / src.parent.name
    folder.mkdir()
    lines = src.read_text().splitlines()
    first = json.loads(lines[0])
    first["acc"] = 1.0 - first["acc"]  # contradicts every reading of its target
    first.pop("brier_score")
    lines[0] = json.dumps(first)
    (folder / src.name).write_text("\n".join(lines) + "\n")
    (folder / next(src.parent.glob("results_*.json")).name).write_bytes(
        next(src.parent.glob("results_*.json")).read_bytes()
    )
    with pytest.raises(MirageInputError, match="line 1: cannot tell which of the 4 options is correct"):
        read_inputs([folder / src.name], scale_from="name")
