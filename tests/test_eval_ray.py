"""mirage eval --ray on a real local Ray cluster: same store as one process; a killed worker resumes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if os.environ.get("CI"):  # CI installs the ray extra: a missing Ray is a failure there, not a skip
    import ray
else:
    ray = pytest.importorskip("ray", reason="Ray (the 'ray' extra) is not installed")

from tiny_models import make_tiny_gpt2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mirage.cli import app  # noqa: E402
from mirage.errors import MirageInputError  # noqa: E402
from mirage.evaluate.ray_runner import evaluate_family_ray  # noqa: E402
from mirage.evaluate.run import evaluate_family  # noqa: E402

pytestmark = pytest.mark.slow
os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")  # Ray would replace builtins.print in this process
TASK = "arithmetic:op=add,digits=2,n=24,seed=0,shots=1"
KW = dict(chunk_size=3, max_new_tokens=6, threads=1)


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    for i, (layers, width) in enumerate([(1, 16), (2, 32), (2, 64)]):
        make_tiny_gpt2(root / f"m{i}", n_layer=layers, n_embd=width, seed=i, init_std=0.3)
    models = "".join(f"  - name: m{i}\n    path: m{i}\n" for i in range(3))
    (root / "family.yaml").write_text(f"family: tiny3\nmodels:\n{models}")
    # one shard at a time: the test can tell which worker holds the shard it kills
    (root / "serial.yaml").write_text(f"family: tiny3\nresources: {{num_cpus: 2}}\nmodels:\n{models}")
    return root


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def single_store(family_dir, tmp_path_factory):
    store = tmp_path_factory.mktemp("single") / "store"
    before = torch.get_num_threads()
    evaluate_family(family_dir / "family.yaml", TASK, store, progress=False, **KW)
    torch.set_num_threads(before)
    return store


def _store_contents(store: Path) -> dict:
    """Everything a reader sees: every shard's table (with its hash) and the manifest."""
    import pyarrow.parquet as pq

    out: dict = {str(p.relative_to(store)): pq.read_table(p) for p in sorted(store.rglob("*.parquet"))}
    out["manifest.json"] = json.loads((store / "manifest.json").read_text())
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    left, right = _store_contents(a), _store_contents(b)
    assert left.keys() == right.keys()
    assert left.pop("manifest.json") == right.pop("manifest.json")
    for key in left:
        assert left[key].equals(right[key], check_metadata=True), key
    assert len(left) == 3


def test_ray_store_equals_single_process_store(family_dir, single_store, cluster, tmp_path, capfd):
    store = tmp_path / "ray"
    result = evaluate_family_ray(family_dir / "family.yaml", TASK, store, **KW)
    assert [s.n_computed for s in result.shards] == [24, 24, 24]
    _assert_same_store(single_store, store)
    err = capfd.readouterr().err  # per-shard progress on the driver's stderr, never stdout
    for m in ("m0", "m1", "m2"):
        assert f"tiny3/{m} on arithmetic_2_digit_add: 24/24 samples" in err
    again = evaluate_family_ray(family_dir / "family.yaml", TASK, store, **KW)
    assert [s.n_computed for s in again.shards] == [0, 0, 0]


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descends_from_us(pid: int) -> bool:
    """Ray started by ray.init() here runs its raylet, and so its workers, below this process;
    another test process's cluster (pytest-xdist) is not ours to kill."""
    me = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        if pid == me:
            return True
    return False


def _shard_workers() -> list[int]:
    """This cluster's Ray workers now running a shard (Ray titles a busy worker after its task's name)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::mirage tiny3/" in (entry / "cmdline").read_bytes() and _descends_from_us(int(entry.name)):
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass  # a process that ended while we looked
    return pids


def test_killed_worker_then_rerun_resumes(family_dir, single_store, cluster, tmp_path):
    store = tmp_path / "ray"
    outcome: dict = {}

    def run() -> None:
        try:
            evaluate_family_ray(family_dir / "serial.yaml", TASK, store, max_retries=0, progress=False, **KW)
        except MirageInputError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    killed = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and killed is None:
        parts = list(store.rglob("*.parquet-part"))
        pids = _shard_workers()
        if parts and len(pids) == 1:  # a shard part-way through, and its worker
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.01)
    worker.join(timeout=300)
    assert killed is not None, "no worker was caught mid-shard"
    # the dead worker's shard is one clear line; the other shards went on and finished
    assert "error" in outcome and "Ray worker died" in outcome["error"] and "rerun to resume" in outcome["error"]
    assert "\n" not in outcome["error"]
    from mirage.evaluate.store import shard_paths

    finished = {
        m for m in ("m0", "m1", "m2") if shard_paths(store, "tiny3", m, "arithmetic_2_digit_add").shard.is_file()
    }
    assert len(finished) == 2
    resumed = evaluate_family_ray(family_dir / "serial.yaml", TASK, store, progress=False, **KW)
    computed = {s.model: s.n_computed for s in resumed.shards}
    (dead,) = {"m0", "m1", "m2"} - finished
    assert 0 < computed[dead] < 24 and all(computed[m] == 0 for m in finished)  # only the missing chunks
    assert not list(store.rglob("*.parquet-part"))
    # the serial family differs from the plain one only in resources, which do not enter the hash
    _assert_same_store(single_store, store)


def test_ray_retry_resumes_the_killed_shard_itself(family_dir, single_store, cluster, tmp_path):
    store = tmp_path / "ray"
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", evaluate_family_ray(family_dir / "serial.yaml", TASK, store, max_retries=2, progress=False, **KW)
        )
    )
    worker.start()
    deadline, killed = time.monotonic() + 180, False
    while time.monotonic() < deadline and not killed:
        pids = _shard_workers()
        if list(store.rglob("*.parquet-part")) and len(pids) == 1:
            os.kill(pids[0], signal.SIGKILL)
            killed = True
        time.sleep(0.01)
    worker.join(timeout=300)
    assert killed and "result" in outcome
    assert sum(s.n_computed for s in outcome["result"].shards) < 72  # the retry reused finished chunks
    _assert_same_store(single_store, store)


def test_cli_ray_without_ray_is_one_line(family_dir, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    out = tmp_path / "store"
    from mirage.cli import with_optional_values

    args = ["eval", "--family", str(family_dir / "family.yaml"), "--task", TASK, "--out", str(out), "--ray"]
    assert with_optional_values(args)[-2:] == ["--ray", "local"]  # what the console script passes
    assert with_optional_values(args + ["-q"])[-3:] == ["--ray", "local", "-q"]
    assert with_optional_values(args + ["auto"])[-2:] == ["--ray", "auto"]
    result = CliRunner().invoke(app, with_optional_values(args))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Ray is not installed" in lines[0] and "mirage[ray]" in lines[0]
    assert not out.exists()


def test_cli_ray_writes_the_same_store(family_dir, single_store, cluster, tmp_path):
    store = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--family",
            str(family_dir / "family.yaml"),
            "--task",
            TASK,
            "--out",
            str(store),
            "--chunk-size",
            "3",
            "--max-new-tokens",
            "6",
            "--threads",
            "1",
            "--ray",
            "local",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.stdout.strip().splitlines()] == ["m0", "m1", "m2"]
    _assert_same_store(single_store, store)
