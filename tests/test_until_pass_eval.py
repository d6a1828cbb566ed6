"""``mirage eval --until-pass`` on a tiny model trained here: sampled pass rates agree with the
teacher-forced prediction, the records are seeded and a SIGKILLed run resumes to the same records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from mirage import UntilPass, evaluate_family, load_task  # noqa: E402
from mirage.analysis.pass_rates import pass_rate_table  # noqa: E402
from mirage.cli import app  # noqa: E402
from mirage.errors import MirageInputError  # noqa: E402
from mirage.evaluate.backends import HFCausalLM  # noqa: E402
from mirage.evaluate.until_pass import target_stop_logprobs  # noqa: E402
from mirage.io.records import read_records  # noqa: E402
from mirage.schema.records import records_from_rows  # noqa: E402
from mirage.train.arithmetic import make_config, train_family  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """Two tiny models trained for 150 steps on 2-digit additions: a few per cent per sample right,
    so items pass within dozens of samples, some not within 64."""
    out = tmp_path_factory.mktemp("fam")
    cfg = make_config(sizes="1x8,1x16", steps=150, digits="2", heldout_per_cell=60, eval_per_cell=60, seed=0)
    train_family(cfg, out, threads=1, progress=False)
    (out / "one.yaml").write_text("family: one\nmodels:\n  - name: 1x16\n    path: 1x16\n")
    return out


@pytest.fixture(scope="module")
def sampled(family, tmp_path_factory):
    store = tmp_path_factory.mktemp("sampled")
    result = evaluate_family(
        family / "family.yaml",
        str(family / "heldout.jsonl"),
        store,
        batch_size=64,
        threads=1,
        progress=False,
        until_pass=UntilPass(64),
    )
    return store, result


def test_pass_rates_agree_with_the_teacher_forced_prediction(family, sampled):
    store, result = sampled
    records = read_records(store)
    table = pass_rate_table(records)
    assert table is not None and len(table) == 2
    for row in table.itertuples():
        assert row.n_items == 60 and row.until_pass == 64 and row.n_predicted == 60
        assert 5 < row.items_passed < 60  # some items pass, some not: the interesting regime
        assert row.ci_low < row.pass_rate < row.ci_high
        assert row.ci_low <= row.predicted_pass_rate <= row.ci_high, row
        assert row.agree
    # the check has power: the prediction for the wrong sampling distribution (temperature 2) lies outside
    lm = HFCausalLM(str(family / "1x16"))
    task = load_task(str(family / "heldout.jsonl"))
    limit = max(len(lm.encode(s.target)) for s in task.samples) + 16
    from mirage.stats.pass_until import predicted_pass_rate

    wrong = target_stop_logprobs(lm, task.samples, task.stop, limit, temperature=2.0)
    _, _, wrong_rate = predicted_pass_rate(np.exp(np.array(wrong, dtype=float)), 64)
    row = table[table["model"] == "1x16"].iloc[0]
    assert not row.ci_low <= wrong_rate <= row.ci_high
    # items that passed stopped being sampled: far fewer samples drawn than items x K
    frame = records.to_pandas()
    for shard in result.shards:
        counted = int(frame.loc[frame["model"] == shard.model, "attempts"].sum())
        assert counted <= shard.samples_drawn <= 2 * counted and shard.samples_drawn < 60 * 64


def test_records_hold_the_attempts(family, sampled):
    store, _ = sampled
    frame = read_records(store).to_pandas()
    assert set(frame["task"]) == {"heldout.until-pass"}
    for row in frame.itertuples():
        first = int(row.first_pass) if row.passed else None
        assert row.attempts == (first + 1 if first is not None else 64)
        assert len(row.sampled_outputs) == min(row.attempts, 8)
        if first is not None and first < 8:
            assert row.sampled_outputs[first].strip() == row.target.strip()
        for text in row.sampled_outputs[: (first if first is not None else 8)]:
            assert text.strip() != row.target.strip()  # attempts before the first pass did not pass
        assert row.output is not None  # the greedy output is there too
        assert row.sampling_temperature == 1.0 and row.until_pass == 64
        assert row.target_stop_logprob < 0


def test_target_stop_logprob_is_the_probability_of_the_target_then_a_stop(family, sampled):
    """Recomputed here from the model's logits: log p(target tokens) + log p(newline or EOS)."""
    store, _ = sampled
    frame = read_records(store).to_pandas()
    row = frame[frame["model"] == "1x16"].iloc[3]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(family / "1x16")
    model = AutoModelForCausalLM.from_pretrained(family / "1x16").eval()
    p_ids = tok(row.prompt, add_special_tokens=False).input_ids
    t_ids = tok(row.target, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([p_ids + t_ids])).logits[0].double(), -1)
    total = sum(float(logp[len(p_ids) - 1 + j, t]) for j, t in enumerate(t_ids))
    stops = [tok.eos_token_id, tok.convert_tokens_to_ids("\n")]
    total += float(torch.logsumexp(logp[len(p_ids) + len(t_ids) - 1, stops], 0))
    assert row.target_stop_logprob == pytest.approx(total, abs=1e-5)


def test_same_seed_same_records_other_seed_other_samples(family, sampled, tmp_path):
    store, _ = sampled
    kw = dict(batch_size=64, threads=1, progress=False)
    evaluate_family(family / "one.yaml", str(family / "heldout.jsonl"), tmp_path / "a", until_pass=UntilPass(64), **kw)
    again = read_records(tmp_path / "a").to_pandas()
    first = read_records(store).to_pandas()
    first = first[first["model"] == "1x16"].reset_index(drop=True)
    for col in ("attempts", "passed", "sampled_outputs"):
        assert again[col].map(repr).tolist() == first[col].map(repr).tolist(), col
    evaluate_family(
        family / "one.yaml", str(family / "heldout.jsonl"), tmp_path / "b", until_pass=UntilPass(64, seed=1), **kw
    )
    other = read_records(tmp_path / "b").to_pandas()
    assert other["attempts"].tolist() != first["attempts"].tolist()


def _eval_cmd(family: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from mirage.cli import main; main()",
        "eval",
        "--family",
        str(family / "one.yaml"),
        "--task",
        str(family / "heldout.jsonl"),
        "--out",
        str(store),
        "--until-pass",
        "256",
        "--batch-size",
        "8",
        "--chunk-size",
        "64",
        "--threads",
        "1",
        "--quiet",
    ]


def _journal_lines(store: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in (store / "mirage-work").rglob("requests.journal"))


@pytest.mark.slow
def test_sigkill_mid_sampling_resumes_to_the_uninterrupted_records(family, tmp_path):
    kw = dict(batch_size=8, chunk_size=64, threads=1, progress=False, until_pass=UntilPass(256))
    full = tmp_path / "full"
    evaluate_family(family / "one.yaml", str(family / "heldout.jsonl"), full, **kw)
    store = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen(_eval_cmd(family, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if (store / "mirage-work").is_dir() and _journal_lines(store) >= 40:  # mid-sampling: kill it
            break
        time.sleep(0.005)
    assert child.poll() is None, "the child finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    saved = _journal_lines(store)
    assert saved >= 40 and not list(store.rglob("*.until-pass-*.parquet"))
    resumed = evaluate_family(family / "one.yaml", str(family / "heldout.jsonl"), store, **kw)
    shard = resumed.shards[0]
    assert shard.samples_reused >= 8 * (saved - 1)  # the killed run's batches were replayed, not redrawn
    assert shard.samples_drawn > 0
    expected = read_records(full).to_pandas()
    got = read_records(store).to_pandas()
    assert got.equals(expected)
    assert not list((store / "mirage-work").rglob("*.journal"))  # cleaned up with the finished shard


def test_until_pass_options_are_checked(family, tmp_path):
    runner = CliRunner()
    base = ["eval", "--family", str(family / "one.yaml"), "--task", str(family / "heldout.jsonl"), "--out"]
    cases = [
        (["--temperature", "0.5"], "--temperature: applies to --until-pass sampling only"),
        (["--seed", "3"], "--seed: applies to --until-pass sampling only"),
        (["--until-pass", "0"], "--until-pass: must be from 1 to"),
        (["--until-pass", "5", "--temperature", "0"], "--temperature: must be above 0"),
        (["--until-pass", "5", "--seed", "-1"], "--seed: must be a whole number"),
        (["--until-pass", "5", "--view", "choice"], None),
    ]
    for extra, words in cases:
        out = tmp_path / f"o{len(os.listdir(tmp_path))}"
        res = runner.invoke(app, base + [str(out)] + extra)
        assert res.exit_code == 2, (extra, res.output)
        line = res.output.strip().splitlines()
        assert len(line) == 1 and line[0].startswith("error: "), res.output
        if words:
            assert words in line[0], line[0]
        assert not out.exists() or not list(out.rglob("*.parquet"))


def test_served_models_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "family: s\nmodels:\n  - name: m\n    backend: openai\n    base_url: http://127.0.0.1:9/v1\n"
        "    model: m\n    tokenizer: gpt2\n    params: 1000\n"
    )
    with pytest.raises(MirageInputError, match="evaluated by a server"):
        evaluate_family(tmp_path / "f.yaml", "arithmetic:n=4", tmp_path / "out", until_pass=UntilPass(4))
    assert not (tmp_path / "out").exists()


def test_contradictory_attempts_in_records_are_one_error():
    row = dict(
        family="f",
        model="m",
        scale=1e3,
        task="t",
        sample_id="0",
        target="12",
        output="12",
        until_pass=10,
        attempts=4,
        passed=False,
    )
    with pytest.raises(MirageInputError, match="did not pass but has fewer attempts than until_pass"):
        records_from_rows([row])
    with pytest.raises(MirageInputError, match="attempts outside 1 .. until_pass"):
        records_from_rows([{**row, "attempts": 11, "passed": True, "first_pass": 10}])
    assert records_from_rows([{**row, "attempts": 10}]).column("attempts").to_pylist() == [10]


@pytest.mark.slow
def test_ray_gives_the_one_process_records(family, sampled, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray (the 'ray' extra) is not installed")
    from mirage.evaluate.ray_runner import evaluate_family_ray

    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")  # Ray would replace builtins.print in this process
    assert not ray.is_initialized()
    store, _ = sampled
    result = evaluate_family_ray(
        family / "family.yaml",
        str(family / "heldout.jsonl"),
        tmp_path / "ray",
        address="local",
        batch_size=64,
        threads=1,
        progress=False,
        until_pass=UntilPass(64),
    )
    assert all(s.samples_drawn > 0 for s in result.shards)
    assert read_records(tmp_path / "ray").to_pandas().equals(read_records(store).to_pandas())
