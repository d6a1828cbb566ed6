"""Shared test set-up: offline, headless, paths to the real data, and the expensive outputs
(the quick trained family, a ``mirage vision --quick`` run) built once per test session."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one math thread each, or torch oversubscribes the machine
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def pythia_table() -> Path:
    from mirage.io.bundled import bundled_path

    return bundled_path("pythia_scaling.csv")


@pytest.fixture(scope="session")
def opt_bloom_table() -> Path:
    from mirage.io.bundled import bundled_path

    return bundled_path("opt_bloom_scaling.csv")


@pytest.fixture(scope="session")
def lm_eval_dir() -> Path:
    return FIXTURES / "lm_eval_pythia"


# ----------------------------------------------------------------------------- built once per session


def shared_build(tmp_path_factory: pytest.TempPathFactory, name: str, key: str, build: Callable[[Path], None]) -> Path:
    """A directory built by ``build`` once per test session, however many xdist workers ask.

    The workers of one session share the parent of their temporary directories; the first to take
    the file lock builds into ``<name>-<key>`` and marks it complete, the others wait on the lock
    and reuse it. ``key`` names what the build depends on (e.g. a training configuration), so a
    change of configuration gets its own directory. Use it read-only, or copy it.
    """
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mirage-shared"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{key}"
    with open(root / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not (target / ".complete").is_file():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
            (target / ".complete").write_text("built once for this test session\n")
    return target


def _quick_family_key() -> str:
    from mirage.train.arithmetic import make_config

    cfg = make_config(quick=True)
    prints = [cfg.model_fingerprint(size) for size in cfg.sizes] + [cfg.eval_per_cell, cfg.family]
    return hashlib.sha256(json.dumps(prints).encode()).hexdigest()[:12]


@pytest.fixture(scope="session")
def quick_family_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mirage train-family --quick`` (the demo's family), trained once per session; read-only."""
    from typer.testing import CliRunner

    from mirage.cli import app

    def build(out: Path) -> None:
        # one thread: the suite runs on 2 cores with 2 pytest workers, and oversubscribed torch
        # threads spin at every small op (measured: 5-10x slower steps)
        result = CliRunner().invoke(app, ["train-family", "--quick", "--threads", "1", "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith("family.yaml")

    return shared_build(tmp_path_factory, "quick-family", _quick_family_key(), build)


@pytest.fixture(scope="session")
def vision_quick_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mirage vision --quick --seed 0`` (all three families), run once per session; read-only."""
    from typer.testing import CliRunner

    from mirage.cli import app

    def build(out: Path) -> None:
        result = CliRunner().invoke(app, ["vision", "--quick", "--seed", "0", "--out", str(out / "out"), "-q"])
        assert result.exit_code == 0, result.output

    return shared_build(tmp_path_factory, "vision-quick", "seed0", build) / "out"
