"""Task figures drawn by worker processes are the figures drawn in process, byte for byte, in
the same order; a worker that dies leaves its figures to the calling process; and a caller's
script is never run again by a worker (no ``__main__`` guard needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mirage import AnalysisSettings, inputs_from_frame, run_analysis
from mirage.report.analysis import figure_jobs
from mirage.report.figure_pool import POOL_MIN_FIGURES, PendingFigures
from mirage.synthetic import many_families_table


@pytest.fixture(scope="module")
def jobs():
    table = many_families_table(4, n_tasks=POOL_MIN_FIGURES + 1, seed=3)
    result = run_analysis(inputs_from_frame(table), AnalysisSettings(bootstrap=0))
    found = figure_jobs(result, max_figures=POOL_MIN_FIGURES + 1)
    assert len(found) >= POOL_MIN_FIGURES  # enough to use workers
    return found


def test_workers_draw_the_same_bytes_in_the_same_order(jobs) -> None:
    here = PendingFigures(jobs, workers=0)
    assert not here._procs
    pooled = PendingFigures(jobs, workers=2)
    assert len(pooled._procs) == 2
    a, b = here.result(), pooled.result()
    assert [(t, k) for t, k, _ in a] == [(j.title, j.key) for j in jobs]
    assert a == b
    assert all(png.startswith(b"\x89PNG") for _, _, png in a)
    assert all(proc.poll() is not None for proc in pooled._procs)  # the workers are gone


def test_a_dead_worker_leaves_its_figures_to_this_process(jobs) -> None:
    pending = PendingFigures(jobs, workers=1)
    assert len(pending._procs) == 1
    pending._procs[0].kill()  # dies mid-way
    assert pending.result() == PendingFigures(jobs, workers=0).result()


def test_a_script_without_a_main_guard_runs_once(tmp_path) -> None:
    marker = tmp_path / "runs.txt"
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from mirage import AnalysisSettings, inputs_from_frame, run_analysis
            from mirage.report.analysis import figure_jobs
            from mirage.report.figure_pool import PendingFigures
            from mirage.synthetic import many_families_table
            with open({str(marker)!r}, "a") as f:
                f.write("ran\\n")
            table = many_families_table(2, n_tasks={POOL_MIN_FIGURES}, seed=1)
            result = run_analysis(inputs_from_frame(table), AnalysisSettings(bootstrap=0))
            pending = PendingFigures(figure_jobs(result, {POOL_MIN_FIGURES}), workers=1)
            assert pending._procs
            print(len(pending.result()))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(POOL_MIN_FIGURES)
    assert marker.read_text() == "ran\n"


def test_cancel_stops_the_workers_without_drawing_the_rest(jobs) -> None:
    pending = PendingFigures(jobs, workers=1)
    pending.cancel()
    assert not pending._todo
    assert all(not t.is_alive() for t in pending._threads)
    assert sum(png is not None for png in pending._pngs) <= 1  # at most the figure in hand
