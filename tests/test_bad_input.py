"""Bad input through the real command line: each case gets one line ``error: <file or option>:
<problem>`` on stderr and exit status 2, or (where the input is legitimate) the right result.

The README's "Bad input" table is checked against ``DOCUMENTED`` below: every row is a case run
here (or names the test elsewhere that runs it), and every case has its row."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mirage.cli import app

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    """One documented bad input: the README row (``what``, ``command``) and the words its one
    error line must contain (``expect``, which the README row must quote)."""

    what: str
    command: str  # as shown in the README
    args: tuple[str, ...]  # the real arguments; {name} is an input built by the ``inputs`` fixture
    expect: str


CASES = [
    Case(
        "a JSONL task that is not UTF-8",
        "eval --task bad.jsonl",
        ("eval", "--family", "{family}", "--task", "{bad_utf8_jsonl}", "--out", "{out}"),
        "line 2: not UTF-8 text",
    ),
    Case(
        "BIG-bench `examples` that are strings",
        "eval --task task.json",
        ("eval", "--family", "{family}", "--task", "{bb_string_examples}", "--out", "{out}"),
        "example 0 must be an object",
    ),
    Case(
        'a BIG-bench `target_scores` value `"yes"`',
        "eval --task task.json",
        ("eval", "--family", "{family}", "--task", "{bb_yes_score}", "--out", "{out}"),
        "target_scores['12'] must be a finite number, got 'yes'",
    ),
    Case(
        "a non-string `example_output_prefix`",
        "eval --task task.json",
        ("eval", "--family", "{family}", "--task", "{bb_prefix}", "--out", "{out}"),
        "'example_output_prefix' must be a string",
    ),
    Case(
        "a non-string `few_shot_example_separator`",
        "eval --task task.json",
        ("eval", "--family", "{family}", "--task", "{bb_separator}", "--out", "{out}"),
        "'few_shot_example_separator' must be a string",
    ),
    Case(
        "more than 100 digits",
        "eval --task arithmetic:digits=5000",
        ("eval", "--family", "{family}", "--task", "arithmetic:digits=5000", "--out", "{out}"),
        "option digits must be <= 100",
    ),
    Case(
        "more than 1,000 few-shot exemplars",
        "eval --task arithmetic:digits=3,n=2,shots=200000",
        ("eval", "--family", "{family}", "--task", "arithmetic:digits=3,n=2,shots=200000", "--out", "{out}"),
        "option shots must be <= 1,000",
    ),
    Case(
        "more than 1,000,000 generated problems",
        "eval --task arithmetic:digits=5,n=100000000",
        ("eval", "--family", "{family}", "--task", "arithmetic:digits=5,n=100000000", "--out", "{out}"),
        "option n must be <= 1,000,000",
    ),
    Case(
        "a truncated `model.safetensors`",
        "eval --family f.yaml",
        ("eval", "--family", "{family_truncated}", "--task", "arithmetic:n=3", "--out", "{out}"),
        "model 'broken': damaged weight file",
    ),
    Case(
        "a hub revision the local cache cannot resolve",
        "eval --family f.yaml",
        ("eval", "--family", "{family_hub}", "--task", "arithmetic:n=3", "--out", "{out}"),
        "model 'hubbed': revision 'no-such-branch' of 'org/absent' cannot be resolved",
    ),
    Case(
        "a width its attention heads cannot split",
        "train-family --sizes 1x33",
        ("train-family", "--sizes", "1x33", "--out", "{out}"),
        "width 33 does not split into its 2 attention heads",
    ),
    Case(
        "a training stream beyond memory",
        "train-family --steps 100000000",
        ("train-family", "--steps", "100000000", "--out", "{out}"),
        "more than the limit of 1,000,000",
    ),
    Case(
        "more than 100,000 points",
        "theory --points 50000000",
        ("theory", "--points", "50000000", "--out", "{out}"),
        "--points: must be <= 100,000",
    ),
    Case(
        "a negative seed",
        "analyze, train-family, demo, vision --seed -1",
        ("analyze", "{scores}", "--seed", "-1", "--out", "{out}"),
        "--seed: must be a whole number from 0 to 4294967295",
    ),
    Case(
        "MNIST files with no images",
        "vision --mnist DIR",
        ("vision", "--experiment", "cnn", "--mnist", "{mnist_empty}", "--out", "{out}"),
        "holds no images",
    ),
    Case(
        "an IDX header whose shape overflows",
        "vision --mnist DIR",
        ("vision", "--experiment", "cnn", "--mnist", "{mnist_overflow}", "--out", "{out}"),
        "IDX header says shape (65536, 65536, 65536, 65536)",
    ),
    Case(
        "NaN pixels",
        "vision --mnist DIR",
        ("vision", "--experiment", "cnn", "--mnist", "{mnist_nan}", "--out", "{out}"),
        "pixel values are NaN or infinite",
    ),
    Case(
        "a CIFAR batch of one image",
        "vision --cifar DIR",
        ("vision", "--experiment", "autoencoder", "--cifar", "{cifar_one}", "--out", "{out}"),
        "holds 1 image; the autoencoder experiment needs at least 100",
    ),
    Case(
        "an `--out` directory mirage did not write",
        "analyze --out DIR",
        ("analyze", "{scores}", "--out", "{foreign_dir}"),
        "exists and is not a mirage output directory",
    ),
]

# checked by tests elsewhere (named here, so a renamed or deleted test fails this module)
ELSEWHERE = [
    (
        "an `--out` on a read-only file system",
        "every command",
        "read-only file system",
        "tests/test_bad_input.py::test_unwritable_out_is_one_line_for_every_command",
    ),
    (
        "an `--out` in a directory without write permission",
        "every command",
        "permission denied",
        "tests/test_bad_input.py::test_unwritable_out_is_one_line_for_every_command",
    ),
    (
        "a truncated or corrupted shard or part file",
        "eval (rerun)",
        "warning: ...: unreadable shard (...); recomputing it",
        "tests/test_eval_store_faults.py::test_a_truncated_shard_or_part_is_reported_in_one_line_and_recomputed",
    ),
    (
        "model names that slug alike (`模型一`/`模型二`, `a/b`/`a_b`, `.`/`..`)",
        "eval",
        "one shard each (readable slug + hash)",
        "tests/test_eval_store_faults.py::test_names_that_used_to_collide_get_their_own_shards",
    ),
    (
        "two `mirage eval` runs on one store",
        "eval (twice at once)",
        "both exit 0 with the same records",
        "tests/test_eval_store_faults.py::test_two_concurrent_runs_cooperate_and_agree",
    ),
    (
        "a kill -9 during the output swap",
        "analyze",
        "the old or the new directory, whole",
        "tests/test_fsio.py::test_sigkill_at_each_rename_of_analyze_leaves_old_or_new",
    ),
]


def _bigbench(path: Path, **override) -> Path:
    task = {
        "name": "t",
        "examples": [
            {"input": f"{i} + {i}", "target": str(2 * i), "target_scores": {str(2 * i): 1, "0": 0}}
            for i in range(6, 10)
        ],
    }
    task.update(override)
    path.mkdir(parents=True)
    (path / "task.json").write_text(json.dumps(task))
    return path / "task.json"


def _idx(dtype_code: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return bytes([0, 0, dtype_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + data


def _mnist(directory: Path, images: bytes, labels: bytes) -> Path:
    directory.mkdir(parents=True)
    (directory / "train-images-idx3-ubyte").write_bytes(images)
    (directory / "train-labels-idx1-ubyte").write_bytes(labels)
    return directory


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    sys.path.insert(0, str(TESTS))
    from tiny_models import make_tiny_gpt2

    model = make_tiny_gpt2(root / "model", n_layer=1, n_embd=16)
    broken = root / "broken"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = {"family": root / "f.yaml", "family_truncated": root / "ft.yaml", "family_hub": root / "fh.yaml"}
    out["family"].write_text(f"family: x\nmodels:\n  - name: ok\n    path: {model}\n")
    out["family_truncated"].write_text(
        f"family: x\nmodels:\n  - name: ok\n    path: {model}\n  - name: broken\n    path: {broken}\n"
    )
    out["family_hub"].write_text(
        f"family: x\nmodels:\n  - name: ok\n    path: {model}\n"
        "  - name: hubbed\n    id: org/absent\n    revision: no-such-branch\n"
    )
    out["bad_utf8_jsonl"] = root / "bad.jsonl"
    out["bad_utf8_jsonl"].write_bytes(b'{"prompt": "1+1=", "target": " 2"}\n{"prompt": "caf\xe9", "target": " x"}\n')
    out["bb_string_examples"] = _bigbench(root / "bb1", examples=["1 + 1 = 2", "2 + 2 = 4"])
    yes = _bigbench(root / "bb2")
    data = json.loads(yes.read_text())
    data["examples"][0]["target_scores"]["12"] = "yes"
    yes.write_text(json.dumps(data))
    out["bb_yes_score"] = yes
    out["bb_prefix"] = _bigbench(root / "bb3", example_output_prefix=3)
    out["bb_separator"] = _bigbench(root / "bb4", few_shot_example_separator=["\n"])
    scores = root / "scores.csv"
    rows = [f"fam,m{i},{10 ** (6 + i)},task,acc,{0.1 * i}" for i in range(1, 5)]
    scores.write_text("family,model,params,task,metric,value\n" + "\n".join(rows) + "\n")
    out["scores"] = scores
    labels = _idx(0x08, (0,), b"")
    out["mnist_empty"] = _mnist(root / "mnist_empty", _idx(0x08, (0, 28, 28), b""), labels)
    out["mnist_overflow"] = _mnist(root / "mnist_overflow", _idx(0x08, (65536,) * 4, b""), labels)
    pixels = np.full((2, 28, 28), 0.5, dtype=">f4")
    pixels[1, 3, 4] = np.nan
    out["mnist_nan"] = _mnist(
        root / "mnist_nan", _idx(0x0D, (2, 28, 28), pixels.tobytes()), _idx(0x08, (2,), bytes([1, 2]))
    )
    cifar = root / "cifar_one"
    cifar.mkdir()
    batch = {b"labels": [3], b"data": np.zeros((1, 3072), dtype=np.uint8)}
    (cifar / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    out["cifar_one"] = cifar
    foreign = root / "my_results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    out["foreign_dir"] = foreign
    return out


def _invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, inputs, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    out = tmp_path / "out"
    args = [a.format(out=out, **inputs) for a in case.args]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = _invoke(args)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in stdout + stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    if "foreign_dir" in case.args[-1]:
        assert (inputs["foreign_dir"] / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["train-family", "demo", "vision"])
def test_negative_seed_is_refused_by_every_seeded_command(command, tmp_path):
    code, _, stderr = _invoke([command, "--seed", "-1", "--out", str(tmp_path / "out")])
    assert code == 2 and stderr.strip() == "error: --seed: must be a whole number from 0 to 4294967295, got -1"


# ----------------------------------------------------------------------------- unwritable --out

COMMANDS = {
    "analyze": ["analyze", "{scores}"],
    "meta": ["meta", "{scores}"],
    "theory": ["theory"],
    "vision": ["vision"],
    "eval": ["eval", "--family", "{family}", "--task", "arithmetic:n=3"],
    "train-family": ["train-family"],
    "demo": ["demo", "--quick"],
}
_RUNNER = """
import json, sys
from typer.testing import CliRunner
from mirage.cli import app
results = {}
for name, args in json.loads(sys.argv[1]).items():
    r = CliRunner().invoke(app, args)
    results[name] = [r.exit_code, r.stderr]
print(json.dumps(results))
"""


def _restricted(kind: str, target: Path, commands: dict[str, list[str]]) -> dict[str, list] | None:
    """Run every command with --out under ``target`` made read-only (a tmpfs mounted read-only in
    a private mount namespace) or without write permission (a 0555 directory, as a user who is not
    its owner: an unprivileged user namespace when this process is root). None when the system
    allows neither."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    script = [sys.executable, "-c", _RUNNER, json.dumps(commands)]
    if kind == "read-only":
        if not shutil.which("unshare"):
            return None
        shell = f'mount -t tmpfs -o ro tmpfs {target} && exec "$@"'
        cmd = ["unshare", "-r", "-m", "sh", "-c", shell, "sh", *script]
    else:
        target.chmod(0o555)
        if os.geteuid() != 0:
            cmd = script
        elif shutil.which("unshare"):
            cmd = ["unshare", "-U", "--map-user=65534", *script]  # root outside, a plain user inside
        else:
            return None
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    target.chmod(0o755)
    if proc.returncode != 0 or not proc.stdout.strip():
        if "Operation not permitted" in proc.stderr or "cannot" in proc.stderr.lower():
            return None  # user namespaces or mounts are not allowed here
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "kind, words", [("read-only", "read-only file system"), ("no permission", "permission denied")]
)
def test_unwritable_out_is_one_line_for_every_command(kind, words, inputs, tmp_path):
    target = tmp_path / "locked"
    target.mkdir()
    commands = {
        name: [a.format(**inputs) for a in args] + ["--out", str(target / "out")] for name, args in COMMANDS.items()
    }
    results = _restricted(kind, target, commands)
    if results is None:
        pytest.skip(f"this system allows neither unprivileged mounts nor user namespaces ({kind})")
    for name, (code, stderr) in results.items():
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, stderr)
        assert lines[0] == f"error: --out: cannot write {target / 'out'}: {target} is not writable ({words})", name
    assert list(target.iterdir()) == []


def test_an_oserror_about_a_path_during_a_run_is_one_line(tmp_path, monkeypatch):
    """The back-stop for a disk that becomes read-only or full mid-run (after the up-front check)."""
    import errno

    import mirage

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "theory.csv"))

    monkeypatch.setattr(mirage, "write_theory", full)
    code, _, stderr = _invoke(["theory", "--out", str(tmp_path / "out")])
    assert code == 2 and stderr.strip() == f"error: {tmp_path / 'out' / 'theory.csv'}: no space left on device"


# ----------------------------------------------------------------------------- the README table


def _readme_rows() -> list[tuple[str, str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- bad-input-table:start -->")[1].split("<!-- bad-input-table:end -->")[0]
    rows = []
    for line in section.strip().splitlines()[2:]:  # skip the header and its rule
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(tuple(c.replace("\\|", "|") for c in cells))
    return rows


def _code(text: str) -> str:
    return text.strip("`")


def test_readme_bad_input_table_matches_the_tested_cases():
    rows = _readme_rows()
    documented = [(c.what, c.command, c.expect) for c in CASES] + [(w, c, e) for w, c, e, _ in ELSEWHERE]
    assert [(r[0], _code(r[1])) for r in rows] == [(w, c) for w, c, _ in documented], (
        "README 'Bad input' rows and the cases of tests/test_bad_input.py differ"
    )
    for (what, _, expect), row in zip(documented, rows):
        assert expect in row[2], f"README row {what!r} does not quote what the test checks: {expect!r}"
    for *_, test in ELSEWHERE:
        path, name = test.split("::")
        assert f"def {name}(" in (REPO / path).read_text(encoding="utf-8"), test
