"""Shared test set-up: offline, headless, and paths to the real data."""

from __future__ import annotations

import os
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
