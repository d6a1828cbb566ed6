"""The Python examples of README.md and docs/*.md run, as written.

Every ```python block of a page runs, in order, in one namespace per page (a later block may use
what an earlier one made), in a directory holding the files the examples name: ``results.csv``
(the bundled Pythia score table) and ``records.parquet`` (per-sample records of a synthetic
family on the demo's three tasks). A block that cannot run here says so on the line before it:
``<!-- not run: REASON -->``; the test checks that such a reason is given. The docstring examples
of the package run as doctests (``--doctest-modules``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>[^>]+?)\s*-->")


def examples(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, reason it is not run or None) of each Python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer("\n" + text):
        line = text[: max(m.start("code") - 1, 0)].count("\n") + 1
        skip = NOT_RUN.search(m.group("before"))
        out.append((line, m.group("code"), skip.group("reason") if skip else None))
    return out


PAGES_WITH_EXAMPLES = [p for p in PAGES if examples(p)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    import pyarrow as pa

    from mirage.io.bundled import bundled_path
    from mirage.io.records import write_records
    from mirage.synthetic import synthetic_records

    root = tmp_path_factory.mktemp("docs")
    shutil.copy(bundled_path("pythia_scaling.csv"), root / "results.csv")
    scales = np.geomspace(1e5, 1e8, 8)
    p = dict(zip(scales, np.linspace(0.05, 0.995, 8)))
    small = dict(sorted(p.items())[:4])
    tables = [
        synthetic_records(p, n_samples=120, lengths=(1, 2, 3, 4, 5, 6), family="f", task="arithmetic", seed=1),
        synthetic_records(p, n_samples=120, lengths=(5, 6), family="f", task="arithmetic_long", seed=2),
        synthetic_records(small, n_samples=600, lengths=(5, 6), family="f", task="arithmetic_long_10x", seed=3),
        synthetic_records(p, n_samples=120, lengths=(5,), family="f", task="arithmetic_10x", seed=4),
    ]
    write_records(pa.concat_tables(tables), root / "records.parquet")
    return root


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: p.name)
def test_examples_of_a_page_run(page: Path, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("results.csv", "records.parquet"):
        os.symlink(workdir / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"doc_{page.stem}"}
    for line, code, reason in examples(page):
        if reason is not None:
            assert len(reason) > 10, f"{page.name}:{line}: say why the example is not run"
            continue
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as exc:  # the page and line of the example that failed
            raise AssertionError(f"{page.name}:{line}: the example fails: {type(exc).__name__}: {exc}") from exc


def test_the_readme_examples_are_run_not_skipped():
    readme = examples(REPO / "README.md")
    assert readme and all(reason is None for _line, _code, reason in readme)
    assert "inputs_from_frame" in "".join(code for _l, code, _r in readme)
