"""Task figures drawn by worker processes while ``mirage analyze`` writes its tables.

A :class:`FigureJob` holds what one figure is drawn from (picklable); :func:`render_figure` draws
it; :class:`PendingFigures` hands jobs to ``python -m mirage.report.figure_worker`` processes
over pipes (an 8-byte little-endian length, then that many bytes: a pickled job in, PNG bytes
out, length 0 when drawing failed) and draws the rest itself.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ..progress import progress_bar
from .figures import plot_task, prediction_overlay
from .png import close, encode_png

FigureKey = tuple[Any, Any]  # (task, shots)


@dataclass(frozen=True)
class FigureJob:
    """What one task figure is drawn from (picklable, so another process can draw it): the curve
    rows of one (task, shots), its chance levels and the predicted exact-match curves over it."""

    title: str
    key: FigureKey
    curves: pd.DataFrame
    floors: dict[str, list[float]]
    predictions: pd.DataFrame | None


def read_message(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    body = stream.read(size)
    return body if len(body) == size else None


def write_message(stream: IO[bytes], body: bytes) -> None:
    """Send one length-prefixed message."""
    stream.write(len(body).to_bytes(8, "little"))
    stream.write(body)
    stream.flush()


def render_figure(job: FigureJob) -> bytes:
    """One task figure as PNG bytes (the same bytes in any process)."""
    factory = prediction_overlay(job.predictions)
    overlay = factory(*job.key) if factory is not None else None
    fig = plot_task(job.curves, job.title, overlay=overlay, floors=job.floors)
    try:
        return encode_png(fig, dpi=100, tight=False)  # the layout is fixed: nothing to crop
    finally:
        close(fig)


# Below this many figures they are drawn in this process: starting a worker (a fresh interpreter
# importing matplotlib) costs about as much as drawing two.
POOL_MIN_FIGURES = 6


def figure_workers() -> int:
    """Processes that draw figures beside the writing of the tables: every core but one (the one
    writing), at most 4; 0 on a single core (figures are then drawn in this process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores - 1, 4))


class PendingFigures:
    """Task figures being drawn: by worker processes (``workers`` > 0 and at least
    :data:`POOL_MIN_FIGURES` figures; :mod:`mirage.report.figure_worker`), which take the jobs
    from the front, and by this process when :meth:`result` is asked, which takes them from the
    back, so the work splits evenly whatever else this process did first. The same PNG bytes in
    the order of the jobs either way; a job a worker fails on or dies with is drawn here."""

    def __init__(self, jobs: Sequence[FigureJob], workers: int | None = None) -> None:
        self.jobs = list(jobs)
        self._todo = collections.deque(range(len(self.jobs)))
        self._pngs: list[bytes | None] = [None] * len(self.jobs)
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        workers = figure_workers() if workers is None else workers
        if workers <= 0 or len(self.jobs) < POOL_MIN_FIGURES:
            return
        package_root = str(Path(__file__).resolve().parents[2])  # this mirage, wherever it was imported from
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        for _ in range(min(workers, len(self.jobs))):
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mirage.report.figure_worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
            except OSError:
                break  # no worker: this process draws them all
            self._procs.append(proc)
            thread = threading.Thread(target=self._feed, args=(proc,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _take(self, *, front: bool) -> int | None:
        with self._changed:
            if not self._todo:
                return None
            return self._todo.popleft() if front else self._todo.pop()

    def _feed(self, proc: subprocess.Popen[bytes]) -> None:
        """Hand one worker jobs from the front until none are left or it fails."""
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while (i := self._take(front=True)) is not None:
                try:
                    write_message(proc.stdin, pickle.dumps(self.jobs[i]))
                    png = read_message(proc.stdout)
                except OSError:
                    png = None
                if not png:  # it failed on this job or died: give the job back and stop
                    with self._changed:
                        self._todo.appendleft(i)
                        self._changed.notify_all()
                    return
                with self._changed:
                    self._pngs[i] = png
                    self._changed.notify_all()
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with self._changed:
                self._changed.notify_all()

    def result(self, progress: bool = False) -> list[tuple[str, FigureKey, bytes]]:
        """[(title, (task, shots), png bytes)] of every job, in order; this process draws from
        the back until none are left, then waits for the workers' last ones."""
        n = len(self.jobs)
        with progress_bar(n, "figures", unit="figure", enabled=progress and n > 0) as bar:
            reported = 0
            while True:
                i = self._take(front=False)
                if i is not None:
                    drawn = render_figure(self.jobs[i])
                    with self._changed:
                        self._pngs[i] = drawn
                else:
                    with self._changed:
                        if not self._todo:  # (a job a failing worker gives back is taken next time)
                            if not any(t.is_alive() for t in self._threads):
                                break
                            self._changed.wait(0.5)
                done = sum(p is not None for p in self._pngs)
                bar.update(done - reported)
                reported = done
            bar.update(sum(p is not None for p in self._pngs) - reported)
        for t in self._threads:
            t.join()
        return [
            (job.title, job.key, png if png is not None else render_figure(job))
            for job, png in zip(self.jobs, self._pngs)
        ]

    def cancel(self) -> None:
        """Draw nothing more (the caller failed): workers finish the figure in hand and stop."""
        with self._changed:
            self._todo.clear()
        for t in self._threads:
            t.join()
