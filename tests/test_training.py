"""mirage train-family: a real family is trained, saved, reloaded offline, kept apart from its
held-out problems, reproducible for a seed, and sharper under exact match than under
per-token log-probability (measured on the quick family, not assumed)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mirage.cli import app
from mirage.errors import MirageInputError
from mirage.train.arithmetic import (
    check_disjoint,
    encode_keys,
    find_overlap,
    make_config,
    make_heldout,
    make_training_stream,
    problem_keys,
    train_family,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def quick_family(quick_family_dir):
    """The family ``mirage train-family --quick --threads 1`` trains (once per session, shared with
    the demo's tests: conftest.quick_family_dir)."""
    return quick_family_dir


@pytest.mark.slow  # the quick family is trained (once per session)
def test_family_yaml_lists_six_models_over_two_orders_of_magnitude(quick_family):
    spec = yaml.safe_load((quick_family / "family.yaml").read_text())
    assert spec["family"] and len(spec["models"]) >= 6
    keys = {"name", "path", "params", "non_embedding_params", "train_tokens", "train_flops"}
    assert all(keys <= set(m) for m in spec["models"])
    params = [m["params"] for m in spec["models"]]
    assert params == sorted(params) and params[-1] / params[0] >= 100
    # equal-tokens rule: every size saw the same tokens; FLOPs follow 6 * N_non_emb * D
    assert len({m["train_tokens"] for m in spec["models"]}) == 1
    for m in spec["models"]:
        assert m["train_flops"] == pytest.approx(6 * m["non_embedding_params"] * m["train_tokens"])
        log = pd.read_csv(quick_family / m["path"] / "train_log.csv")
        assert list(log.columns) == ["step", "loss", "tokens"] and log["tokens"].iloc[-1] == m["train_tokens"]
        assert log["loss"].iloc[-20:].mean() < log["loss"].iloc[:5].mean()  # it learned something


@pytest.mark.slow  # the quick family is trained (once per session)
def test_models_reload_offline_and_answer_the_eval_prompt(quick_family):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = yaml.safe_load((quick_family / "family.yaml").read_text())
    largest = quick_family / spec["models"][-1]["path"]
    tok = AutoTokenizer.from_pretrained(largest, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(largest, local_files_only=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == spec["models"][-1]["params"]
    # a held-out prompt, character by character
    sample = json.loads((quick_family / "heldout.jsonl").read_text().splitlines()[0])
    assert re.fullmatch(r"\d{4}\+\d{4}=", sample["prompt"]) and sample["target"].isdigit()
    ids = tok(sample["prompt"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert ids.shape[1] == len(sample["prompt"]) and tok.unk_token_id not in ids[0].tolist()
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(gen[0, ids.shape[1] :])
    assert re.match(r"\d+\n", text), f"model output {text!r} is not an answer ended by a newline"


@pytest.mark.slow  # the quick family is trained (once per session)
def test_mirage_eval_reads_the_family_and_agrees_with_quick_eval(quick_family, tmp_path):
    """The family is evaluated by ``mirage eval`` as it is written (family.yaml, the prompt format,
    its generation budget), and its greedy outputs match the teacher-forced exact match."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.evaluate.run import evaluate_family
    from mirage.train.arithmetic import Problem, score_heldout

    spec = yaml.safe_load((quick_family / "family.yaml").read_text())
    largest = spec["models"][-1]
    one = tmp_path / "one.yaml"
    one.write_text(
        yaml.safe_dump(
            {"family": spec["family"], "models": [{**largest, "path": str((quick_family / largest["path"]).resolve())}]}
        )
    )
    evaluate_family(one, f"{quick_family / 'heldout.jsonl'}:n=60,seed=0", tmp_path / "store", progress=False, threads=1)
    records = pd.concat(pd.read_parquet(f) for f in sorted((tmp_path / "store").rglob("*.parquet")))
    assert len(records) == 60 and records["target"].str.len().nunique() >= 3  # several answer lengths
    eval_exact = (records["output"].str.strip() == records["target"].str.strip()).to_numpy()
    assert eval_exact.mean() > 0  # the largest model answers some held-out problems
    path = quick_family / largest["path"]
    operands = [[int(x[::-1]) for x in re.findall(r"\d+", p)] for p in records["prompt"]]  # digits reversed
    problems = [Problem("add", a, b, max(len(str(a)), len(str(b))), 4) for a, b in operands]
    assert [p.prompt for p in problems] == records["prompt"].tolist()
    assert [p.target for p in problems] == records["target"].tolist()
    ours = score_heldout(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), problems)
    np.testing.assert_array_equal(eval_exact, ours["exact_match"].to_numpy())


@pytest.mark.slow  # the quick family is trained (once per session)
def test_heldout_problems_never_trained_on(quick_family):
    cfg = make_config(quick=True)
    heldout = [json.loads(line) for line in (quick_family / "heldout.jsonl").read_text().splitlines()]
    assert heldout and {"prompt", "target"} <= set(heldout[0])
    keys = problem_keys(make_heldout(cfg.ops, cfg.digits, cfg.heldout_per_cell, cfg.seed), cfg.ops)
    assert len(keys) == len(heldout) == len(set(keys.tolist()))
    ops, a, b = make_training_stream(cfg.ops, cfg.digits, cfg.steps * cfg.batch_size, keys, cfg.seed)
    assert find_overlap(encode_keys(ops, a, b), keys).n_shared == 0
    # the held-out pairs are those `arithmetic:op=add,digits=2,...,seed=0` draws (a prefix of them)
    from mirage.io.tasks import arithmetic_task

    task = arithmetic_task(op="add", digits=2, n=50, seed=cfg.seed, view="generate")
    asked = {(int(s.metadata["a"]), int(s.metadata["b"])) for s in task.samples}
    assert asked <= {(h["a"], h["b"]) for h in heldout if h["digits"] == 2}


def test_answer_format_is_reversed_and_padded():
    from mirage.train.arithmetic import arithmetic_prompt, arithmetic_target

    assert arithmetic_prompt(457, "add", 312, 5) == "75400+21300=" and arithmetic_target(457, "add", 312) == "9670"
    assert arithmetic_target(3, "add", 4) == "70" and arithmetic_target(95, "add", 7) == "201"
    assert arithmetic_target(12, "sub", 45) == "33-" and arithmetic_target(12, "mul", 45) == "0450"
    for a, b in [(0, 0), (99, 99), (12345, 67890)]:  # reading the digits back gives the sum
        assert int(arithmetic_target(a, "add", b)[::-1]) == a + b


def test_overlap_is_caught():
    cfg = make_config(quick=True)
    heldout = problem_keys(make_heldout(cfg.ops, cfg.digits, 50, 0), cfg.ops)
    ops, a, b = make_training_stream(cfg.ops, cfg.digits, 5000, np.array([], dtype=np.int64), 0)  # no exclusion
    leaky = np.concatenate([encode_keys(ops, a, b), heldout[:3]])
    with pytest.raises(MirageInputError, match="held-out problems occur"):
        check_disjoint(leaky, heldout)
    assert find_overlap(leaky, heldout).n_shared >= 3


def test_same_seed_same_weights_and_losses(tmp_path):
    import torch
    from safetensors.torch import load_file

    cfg = make_config(sizes="tiny,1x12", steps=15, batch_size=16, seed=3, heldout_per_cell=20, eval_per_cell=5)
    r1 = train_family(cfg, tmp_path / "a", threads=1, progress=False)
    r2 = train_family(cfg, tmp_path / "b", threads=1, progress=False)
    train_family(  # another seed: the losses below must differ
        make_config(sizes="tiny", steps=15, batch_size=16, seed=4, heldout_per_cell=20, eval_per_cell=5),
        tmp_path / "c",
        threads=1,
        progress=False,
    )
    for m in ("tiny", "1x12"):
        w1, w2 = (
            load_file(tmp_path / "a" / m / "model.safetensors"),
            load_file(tmp_path / "b" / m / "model.safetensors"),
        )
        assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "a" / m / "train_log.csv"), pd.read_csv(tmp_path / "b" / m / "train_log.csv")
        )
    pd.testing.assert_frame_equal(r1.quick_eval, r2.quick_eval)
    assert (tmp_path / "a" / "heldout.jsonl").read_text() == (tmp_path / "b" / "heldout.jsonl").read_text()
    assert not pd.read_csv(tmp_path / "c" / "tiny" / "train_log.csv")["loss"].equals(
        pd.read_csv(tmp_path / "a" / "tiny" / "train_log.csv")["loss"]
    )
    # a finished model with the same settings is reused, not retrained
    again = train_family(cfg, tmp_path / "a", threads=1, progress=False)
    assert all(m.cached for m in again.models) and not any(m.cached for m in r1.models)
    changed = train_family(
        make_config(sizes="tiny", steps=16, batch_size=16, seed=3, heldout_per_cell=20, eval_per_cell=5),
        tmp_path / "a",
        threads=1,
        progress=False,
    )
    assert not changed.models[0].cached


@pytest.mark.slow  # the quick family is trained (once per session)
def test_quick_family_exact_match_is_sharper_than_logprob(quick_family):
    from mirage.stats import jump_sharpness

    q = pd.read_csv(quick_family / "quick_eval.csv")
    assert {"model", "params", "subset", "n", "exact_match", "token_logprob"} <= set(q.columns)
    allq = q[q["subset"] == "all"].sort_values("params")
    assert len(allq) >= 6 and (allq["token_logprob"] < 0).all()
    em = jump_sharpness(allq["params"], allq["exact_match"])
    lp = jump_sharpness(allq["params"], allq["token_logprob"])
    assert allq["exact_match"].iloc[-1] > allq["exact_match"].iloc[0]  # the family does improve
    assert allq["token_logprob"].iloc[-1] > allq["token_logprob"].iloc[0]
    assert em.jump_share > lp.jump_share, allq[["model", "exact_match", "token_logprob"]].to_string()


@pytest.mark.parametrize(
    "args, where",
    [
        (["--ops", "add,div"], "--ops"),
        (["--digits", "0,2"], "--digits"),
        (["--digits", "two"], "--digits"),
        (["--sizes", "tiny,huge"], "--sizes"),
        (["--steps", "0"], "--steps"),
        (["--task", "lambada"], "--task"),
    ],
)
def test_bad_options_are_one_line_errors_and_write_nothing(tmp_path, args, where):
    out = tmp_path / "never"
    result = runner.invoke(app, ["train-family", *args, "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {where}:") and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
