"""Task figures drawn by worker processes are the figures drawn in process, byte for byte, in
the same order; a pool that breaks leaves its figures to the calling process."""

from __future__ import annotations

import pytest

from mirage import AnalysisSettings, inputs_from_frame, run_analysis
from mirage.report.analysis import POOL_MIN_FIGURES, PendingFigures, figure_jobs
from mirage.synthetic import many_families_table


@pytest.fixture(scope="module")
def jobs():
    table = many_families_table(4, n_tasks=POOL_MIN_FIGURES + 1, seed=3)
    result = run_analysis(inputs_from_frame(table), AnalysisSettings(bootstrap=0))
    found = figure_jobs(result, max_figures=POOL_MIN_FIGURES + 1)
    assert len(found) >= POOL_MIN_FIGURES  # enough to use the pool
    return found


def test_pool_draws_the_same_bytes_in_the_same_order(jobs) -> None:
    here = PendingFigures(jobs, workers=0)
    assert here._pool is None
    pooled = PendingFigures(jobs, workers=2)
    assert pooled._pool is not None
    a, b = here.result(), pooled.result()
    assert [(t, k) for t, k, _ in a] == [(j.title, j.key) for j in jobs]
    assert a == b
    assert all(png.startswith(b"\x89PNG") for _, _, png in a)


def test_a_broken_pool_leaves_its_figures_to_this_process(jobs) -> None:
    pending = PendingFigures(jobs, workers=1)
    assert pending._pool is not None
    for proc in list(pending._pool._processes.values()):  # the worker dies mid-way
        proc.kill()
    got = pending.result()
    assert got == PendingFigures(jobs, workers=0).result()
