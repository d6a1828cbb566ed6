"""The record store under stress: names that used to collide, a task path spelled two ways, two
runs at once, crashes that leave temp files, damaged shards and parts, truncated weights, and hub
models whose branch moves (a Hugging Face cache built here in huggingface_hub's own layout)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import make_tiny_gpt2  # noqa: E402

from mirage.errors import MirageInputError  # noqa: E402
from mirage.evaluate.run import evaluate_family  # noqa: E402
from mirage.evaluate.store import CONFIG_HASH_KEY, shard_paths  # noqa: E402
from mirage.io.tasks import load_task  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK = "arithmetic:op=add,digits=2,n=12,seed=0,shots=1"
KW = dict(chunk_size=4, max_new_tokens=4, progress=False, threads=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "a": make_tiny_gpt2(root / "a", n_layer=1, n_embd=16, seed=0, init_std=0.3),
        "b": make_tiny_gpt2(root / "b", n_layer=1, n_embd=16, seed=1, init_std=0.3),
        "c": make_tiny_gpt2(root / "c", n_layer=1, n_embd=16, seed=2, init_std=0.3),
    }


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _family(path: Path, entries: list[tuple[str, str]], family: str = "tiny") -> Path:
    """A family YAML; entries are (name, 'path: ...' or 'id: ...' lines)."""
    lines = [f"family: {family!r}" if family else "family: tiny", "models:"]
    for name, ref in entries:
        lines.append(f"  - name: {name!r}")
        lines += [f"    {part}" for part in ref.split("\n")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **extra}


def _eval_cmd(family: Path, store: Path, task: str = TASK) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mirage.cli",
        "eval",
        "--family",
        str(family),
        "--task",
        task,
        "--out",
        str(store),
        "--chunk-size",
        "4",
        "--max-new-tokens",
        "4",
        "--threads",
        "1",
        "--quiet",
    ]


def _records(store: Path):
    from mirage.io.records import read_records

    return read_records(store).to_pandas().sort_values(["model", "sample_id"]).reset_index(drop=True)


def _store_files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- identity


def test_names_that_used_to_collide_get_their_own_shards(models, tmp_path):
    names = ["模型一", "模型二", "a/b", "a_b", ".", "..", "µ-large"]
    fam = _family(tmp_path / "f.yaml", [(n, f"path: {models['a']}") for n in names], family="模型")
    store = tmp_path / "store"
    first = evaluate_family(fam, TASK, store, **KW)
    assert [s.n_computed for s in first.shards] == [12] * len(names)
    assert len({s.path for s in first.shards}) == len(names)
    frame = _records(store)
    assert sorted(frame["model"].unique()) == sorted(names) and len(frame) == 12 * len(names)
    # nothing the store writes is skipped by a directory scan: no component starts with . or _
    for rel in _store_files(store):
        assert not any(part.startswith((".", "_")) for part in Path(rel).parts), rel
    from mirage.io.inputs import read_inputs

    assert read_inputs([str(store)]).records.num_rows == 12 * len(names)  # analyze sees every model
    again = evaluate_family(fam, TASK, store, **KW)
    assert [s.n_computed for s in again.shards] == [0] * len(names)


def test_a_task_file_is_identified_by_its_content_not_its_spelling(models, tmp_path, monkeypatch):
    lines = "".join(f'{{"prompt": "{i}+{i}=", "target": " {2 * i}"}}\n' for i in range(6))
    (tmp_path / "t.jsonl").write_text(lines)
    fam = _family(tmp_path / "f.yaml", [("a", f"path: {models['a']}")])
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    assert evaluate_family(fam, load_task("t.jsonl"), store, **KW).shards[0].n_computed == 6
    assert evaluate_family(fam, load_task(str(tmp_path / "t.jsonl")), store, **KW).shards[0].n_computed == 0
    assert evaluate_family(fam, load_task("./t.jsonl"), store, **KW).shards[0].n_computed == 0
    (tmp_path / "t.jsonl").write_text(lines.replace('" 10"', '" 11"'))  # a changed target: recomputed
    assert evaluate_family(fam, load_task("t.jsonl"), store, **KW).shards[0].n_computed == 6


# ----------------------------------------------------------------------------- two runs at once


@pytest.mark.slow  # two evaluation processes plus a reference run (~40 s)
def test_two_concurrent_runs_cooperate_and_agree(models, tmp_path):
    fam = _family(tmp_path / "f.yaml", [(k, f"path: {p}") for k, p in models.items()])
    reference = tmp_path / "reference"
    evaluate_family(fam, TASK, reference, **KW)
    store = tmp_path / "store"
    runs = [
        subprocess.Popen(_eval_cmd(fam, store), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [r.communicate(timeout=300) for r in runs]
    for r, (_out, err) in zip(runs, outs):
        assert r.returncode == 0, err
        assert "Traceback" not in err and "Error" not in err, err
    computed = [int(line.split("(")[1].split(" computed")[0]) for out, _ in outs for line in out.splitlines()]
    assert sum(computed) == 12 * len(models)  # every shard computed exactly once, by one of the two
    assert _records(store).equals(_records(reference))
    left = [f for f in _store_files(store) if not f.endswith((".parquet", ".lock")) and f != "manifest.json"]
    assert left == []  # no part, temp or orphan file once both are done
    import json

    manifest = json.loads((store / "manifest.json").read_text())
    assert len(manifest["shards"]) == len(models)  # neither run lost the other's entries


# ----------------------------------------------------------------------------- crashes and damage


def _strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    probe = subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            os.devnull,
            "-e",
            "inject=getppid:error=EPERM",
            sys.executable,
            "-c",
            "import os; os.getppid()",
        ],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _strace_works(), reason="strace (apt install strace) is needed to SIGKILL at a system call")
def test_a_kill_at_the_shard_rename_leaves_a_temp_file_the_next_run_removes(models, tmp_path):
    fam = _family(tmp_path / "f.yaml", [("a", f"path: {models['a']}"), ("b", f"path: {models['b']}")])
    reference = tmp_path / "reference"
    evaluate_family(fam, TASK, reference, **KW)
    store = tmp_path / "store"
    # renames of model a: its 3 parts, then its shard (the 4th): kill the run right there
    killed = subprocess.run(
        ["strace", "-f", "-o", os.devnull, "-e", "inject=rename:signal=KILL:when=4", *_eval_cmd(fam, store)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode != 0
    temps = [f for f in _store_files(store) if ".mirage-tmp-" in f]
    assert len(temps) == 1 and temps[0].endswith(".tmp")  # the shard's temp file, never read as data
    # and the hidden temp names mirage 0.1 left in its own layout
    (store / "tiny" / "a").mkdir(parents=True)
    legacy = [
        store / "tiny" / "a" / ".arithmetic_2_digit_add.parquet.ab12cd34.parquet",
        store / ".manifest.json.ab12cd34.tmp",
    ]
    for f in legacy:
        f.write_bytes(b"PAR1 half")
    done = subprocess.run(_eval_cmd(fam, store), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("a: 12 records (0 computed, 12 reused)")  # its parts were kept
    assert not [f for f in _store_files(store) if ".mirage-tmp-" in f or Path(f).name.startswith(".")]
    assert _records(store).equals(_records(reference))


def test_a_truncated_shard_or_part_is_reported_in_one_line_and_recomputed(models, tmp_path, capfd):
    fam = _family(tmp_path / "f.yaml", [("a", f"path: {models['a']}")])
    store = tmp_path / "store"
    evaluate_family(fam, TASK, store, **KW)
    reference = _records(store)
    shard = shard_paths(store, "tiny", "a", "arithmetic_2_digit_add").shard
    shard.write_bytes(shard.read_bytes()[:100])  # "Parquet magic bytes not found"
    capfd.readouterr()
    result = evaluate_family(fam, TASK, store, **KW)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and str(shard) in err[0] and "recomputing" in err[0]
    assert result.shards[0].n_computed == 12 and len(result.notes) == 1
    assert _records(store).equals(reference)
    # a damaged part of an unfinished shard: only its chunk is recomputed
    paths = shard_paths(store, "tiny", "a", "arithmetic_2_digit_add")
    digest = (__import__("pyarrow.parquet", fromlist=["x"]).read_schema(shard).metadata[CONFIG_HASH_KEY]).decode()
    import pyarrow.parquet as pq

    from mirage.evaluate.store import write_table

    table = pq.read_table(shard)
    for i in range(3):
        write_table(paths.part(digest, i), table.slice(4 * i, 4).replace_schema_metadata(None))
    shard.unlink()
    part = paths.part(digest, 1)
    meta = pq.ParquetFile(part).metadata
    column = meta.row_group(0).column(meta.schema.names.index("prompt"))
    data = bytearray(part.read_bytes())
    data[column.data_page_offset + column.total_compressed_size - 1] ^= 0xFF  # inside the prompts' data page
    part.write_bytes(bytes(data))
    capfd.readouterr()
    result = evaluate_family(fam, TASK, store, **KW)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(part) in err[0] and "recomputing its chunk" in err[0]
    assert result.shards[0].n_computed == 4
    assert _records(store).equals(reference)


def test_shards_of_an_older_store_layout_are_superseded_not_duplicated(models, tmp_path):
    fam = _family(tmp_path / "f.yaml", [("a", f"path: {models['a']}")])
    store = tmp_path / "store"
    evaluate_family(fam, TASK, store, **KW)
    new = shard_paths(store, "tiny", "a", "arithmetic_2_digit_add").shard
    old = store / "tiny" / "a" / "arithmetic_2_digit_add.parquet"  # where mirage 0.1 put it
    old.parent.mkdir(parents=True)
    shutil.copy(new, old)
    (store / ".parts" / "tiny" / "a" / ("arithmetic_2_digit_add-" + "0" * 16)).mkdir(parents=True)
    other = store / "tiny" / "b" / "arithmetic_2_digit_add.parquet"  # another model's: kept
    other.parent.mkdir(parents=True)
    shutil.copy(new, other)
    new.unlink()
    evaluate_family(fam, TASK, store, **KW)
    assert not old.exists() and not (store / ".parts").exists() and other.exists()


def test_a_truncated_checkpoint_fails_before_any_shard_is_written(models, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(models["b"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fam = _family(tmp_path / "f.yaml", [("a", f"path: {models['a']}"), ("broken", f"path: {broken}")])
    store = tmp_path / "store"
    with pytest.raises(MirageInputError, match=r"model 'broken': damaged weight file .*incomplete"):
        evaluate_family(fam, TASK, store, **KW)
    assert not store.exists()


# ----------------------------------------------------------------------------- the hub cache


def _hub_cache(root: Path, repo_id: str, snapshots: dict[str, Path], main: str) -> Path:
    """A Hugging Face cache in huggingface_hub's layout: blobs/ named by content hash,
    snapshots/<commit>/ of symlinks into blobs/, refs/main holding a commit."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for commit, source in snapshots.items():
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        for f in source.iterdir():
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = snap / f.name
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(main)
    return root


@pytest.mark.slow  # evaluates three hub revisions of a tiny model (~100 s)
def test_a_moved_branch_recomputes_and_a_missing_revision_fails_up_front(models, tmp_path):
    commit_1, commit_2 = (hashlib.sha1(s.encode()).hexdigest() for s in ("one", "two"))
    cache = _hub_cache(tmp_path / "hub", "org/tiny", {commit_1: models["b"], commit_2: models["c"]}, main=commit_1)
    fam = _family(tmp_path / "f.yaml", [("local", f"path: {models['a']}"), ("hubbed", "id: org/tiny")])
    store = tmp_path / "store"
    env = _env(HF_HUB_CACHE=str(cache))
    first = subprocess.run(_eval_cmd(fam, store), env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = _records(store)
    again = subprocess.run(_eval_cmd(fam, store), env=env, capture_output=True, text=True, timeout=300)
    assert [line.split(" in ")[0] for line in again.stdout.splitlines()] == [
        "local: 12 records (0 computed, 12 reused)",
        "hubbed: 12 records (0 computed, 12 reused)",
    ]
    (cache / "models--org--tiny" / "refs" / "main").write_text(commit_2)  # the branch moved
    moved = subprocess.run(_eval_cmd(fam, store), env=env, capture_output=True, text=True, timeout=300)
    assert moved.returncode == 0, moved.stderr
    assert [line.split(" in ")[0] for line in moved.stdout.splitlines()] == [
        "local: 12 records (0 computed, 12 reused)",
        "hubbed: 12 records (12 computed, 0 reused)",
    ]
    after = _records(store)
    hub_before = before[before.model == "hubbed"]["target_logprobs"].map(tuple).tolist()
    hub_after = after[after.model == "hubbed"]["target_logprobs"].map(tuple).tolist()
    assert hub_before != hub_after  # the new commit's weights, not the old shard
    import json

    manifest = json.loads((store / "manifest.json").read_text())
    assert {e["config"]["commit"] for e in manifest["shards"].values()} == {None, commit_2}
    # pinning the branch's commit by hand is the same identity: reused
    pinned = _family(
        tmp_path / "p.yaml", [("local", f"path: {models['a']}"), ("hubbed", f"id: org/tiny\nrevision: '{commit_2}'")]
    )
    same = subprocess.run(_eval_cmd(pinned, store), env=env, capture_output=True, text=True, timeout=300)
    assert "hubbed: 12 records (0 computed, 12 reused)" in same.stdout, same.stderr
    # a revision the cache cannot resolve fails before the first model runs: nothing is written
    for revision in ("nope", "f" * 40):
        bad = _family(
            tmp_path / "bad.yaml",
            [("local", f"path: {models['a']}"), ("hubbed", f"id: org/tiny\nrevision: '{revision}'")],
        )
        fresh = tmp_path / f"fresh-{revision[:4]}"
        failed = subprocess.run(_eval_cmd(bad, fresh), env=env, capture_output=True, text=True, timeout=300)
        lines = failed.stderr.strip().splitlines()
        assert failed.returncode == 2 and len(lines) == 1, failed.stderr
        assert lines[0].startswith("error: ") and "model 'hubbed'" in lines[0] and revision in lines[0]
        assert not fresh.exists()
