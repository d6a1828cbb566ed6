"""mirage eval end to end: family specs, the record store, resume after SIGKILL, invalidation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import make_tiny_gpt2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mirage import evaluate_family, load_family  # noqa: E402
from mirage.cli import app  # noqa: E402
from mirage.errors import MirageInputError  # noqa: E402
from mirage.evaluate.store import shard_paths  # noqa: E402
from mirage.io.records import read_records  # noqa: E402

TASK = "arithmetic:op=add,digits=2,n=24,seed=0,shots=1"


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    make_tiny_gpt2(root / "small", n_layer=2, n_embd=32, seed=0, init_std=0.3)
    make_tiny_gpt2(root / "big", n_layer=2, n_embd=64, seed=1, init_std=0.3)
    (root / "family.yaml").write_text(
        "family: tiny\nmodels:\n  - name: small\n    path: small\n  - name: big\n    path: big\n    params: 99000\n"
    )
    return root


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


def _shards(store: Path) -> dict[str, object]:
    import pyarrow.parquet as pq

    return {
        str(p.relative_to(store)): pq.read_table(p).to_pandas()
        for p in sorted(store.rglob("*.parquet"))
        if not p.name.startswith(".")
    }


def test_store_holds_valid_records_with_counted_params(family_dir, tmp_path, one_thread):
    store = tmp_path / "store"
    result = evaluate_family(
        family_dir / "family.yaml", TASK, store, chunk_size=10, max_new_tokens=6, progress=False, threads=one_thread
    )
    assert [s.n_computed for s in result.shards] == [24, 24]
    table = read_records(store)  # the record schema's own validation
    frame = table.to_pandas()
    assert len(frame) == 48 and set(frame["model"]) == {"small", "big"}
    from transformers import AutoModelForCausalLM

    small_params = AutoModelForCausalLM.from_pretrained(family_dir / "small").num_parameters()
    assert set(frame.loc[frame.model == "small", "scale"]) == {float(small_params)}
    assert set(frame.loc[frame.model == "big", "scale"]) == {99000.0}
    row = frame.iloc[0]
    assert len(row.target_logprobs) == len(row.target_tokens) == len(row.target)
    assert len(row.choices) == len(row.choice_logprobs) == len(row.choice_lengths) == 7
    assert row.output is not None and row.shots == 1
    manifest = (store / "manifest.json").read_text()
    assert "config_hash" in manifest and "transformers" in manifest
    # nothing hidden is visible to readers, and analyze can read the store
    from mirage.io.inputs import read_inputs

    inputs = read_inputs([str(store)])
    assert inputs.records is not None and inputs.records.num_rows == 48
    # a rerun computes nothing
    again = evaluate_family(
        family_dir / "family.yaml", TASK, store, chunk_size=10, max_new_tokens=6, progress=False, threads=one_thread
    )
    assert [s.n_computed for s in again.shards] == [0, 0]


def test_changed_model_invalidates_only_its_shard(family_dir, tmp_path, one_thread):
    import shutil

    fam_dir = tmp_path / "fam"
    shutil.copytree(family_dir, fam_dir)
    store = tmp_path / "store"
    kw = dict(chunk_size=12, max_new_tokens=4, progress=False, threads=one_thread)
    evaluate_family(fam_dir / "family.yaml", TASK, store, **kw)
    before = _shards(store)
    time.sleep(0.01)
    make_tiny_gpt2(fam_dir / "big", n_layer=2, n_embd=64, seed=7, init_std=0.3)  # retrained "big"
    result = evaluate_family(fam_dir / "family.yaml", TASK, store, **kw)
    assert {s.model: s.n_computed for s in result.shards} == {"small": 0, "big": 24}
    after = _shards(store)
    key_small = str(shard_paths(store, "tiny", "small", "arithmetic_2_digit_add").shard.relative_to(store))
    key_big = str(shard_paths(store, "tiny", "big", "arithmetic_2_digit_add").shard.relative_to(store))
    assert after[key_small].equals(before[key_small])
    assert not after[key_big]["target_logprobs"].map(tuple).equals(before[key_big]["target_logprobs"].map(tuple))


def _eval_cmd(family: Path, store: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from mirage.cli import main; main()",
        "eval",
        "--family",
        str(family),
        "--task",
        TASK,
        "--out",
        str(store),
        "--chunk-size",
        "3",
        "--max-new-tokens",
        "12",
        "--threads",
        "1",
        "--quiet",
    ]


@pytest.mark.slow  # a subprocess evaluation killed and resumed (~70 s)
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_records(family_dir, tmp_path, one_thread):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    full = tmp_path / "full"
    evaluate_family(
        family_dir / "family.yaml", TASK, full, chunk_size=3, max_new_tokens=12, progress=False, threads=one_thread
    )
    store = tmp_path / "killed"
    child = subprocess.Popen(
        _eval_cmd(family_dir / "family.yaml", store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if list((store / "mirage-work").rglob("part-*.parquet-part")):  # first chunk on disk: kill mid-run
            break
        time.sleep(0.005)
    assert child.poll() is None, "the child finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list((store / "mirage-work").rglob("part-*.parquet-part"))
    # killed during the first model: no finished shard, and readers see none of the unfinished work
    assert not list(store.glob("tiny-*/*/*.parquet"))
    with pytest.raises(MirageInputError, match="no .parquet"):
        read_records(store)
    done = subprocess.run(
        _eval_cmd(family_dir / "family.yaml", store), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]  # "small: 24 records (N computed, M reused) ..."
    assert first.startswith("small:") and " 0 reused" not in first and " 0 computed" not in first
    assert _shards(store).keys() == _shards(full).keys()
    for key, frame in _shards(full).items():
        assert _shards(store)[key].equals(frame), key
    assert not list((store / "mirage-work").rglob("*.parquet-part"))  # parts are cleaned up


def test_family_spec_errors(tmp_path):
    spec = tmp_path / "f.yaml"
    cases = {
        "family: x\nmodels:\n  - name: a\n    path: nowhere\n": "does not exist",
        "family: x\nmodels: []\n": "non-empty list",
        "models:\n  - name: a\n    id: org/m\n": "'family'",
        "family: x\nmodels:\n  - name: a\n    id: org/m\n    path: .\n": "exactly one",
        "family: x\nmodels:\n  - name: a\n    id: org/m\n    params: -3\n": "positive number",
        "family: x\nmodels:\n  - name: a\n    id: org/m\n  - name: a\n    id: org/n\n": "appears twice",
        "family: x\nmodels:\n  - name: a\n    id: org/m\n    size: 3\n": "unknown key",
        "family: [unclosed\n": "malformed YAML",
        "family: x\nmodels:\n  - name: a\n    path: .\n": "no config.json",
    }
    for text, needle in cases.items():
        spec.write_text(text)
        with pytest.raises(MirageInputError, match=needle):
            load_family(spec)
    spec.write_text(
        "family: x\nscale: step\nmodels:\n  - name: a\n    id: org/m\n    revision: step1000\n    step: 1000\n"
    )
    fam = load_family(spec)
    assert fam.scale == "step" and fam.models[0].revision == "step1000" and not fam.models[0].local


def test_cli_missing_model_path_is_one_line_exit_2(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("family: x\nmodels:\n  - name: a\n    path: ./missing\n")
    out = tmp_path / "store"
    result = CliRunner().invoke(app, ["eval", "--family", str(spec), "--task", TASK, "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0]
    assert not out.exists()  # nothing written
    result = CliRunner().invoke(
        app, ["eval", "--family", str(tmp_path / "nope.yaml"), "--task", TASK, "--out", str(out)]
    )
    assert result.exit_code == 2 and not out.exists()
