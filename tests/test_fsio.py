"""Output directories are replaced whole: at every instant the name holds the complete old or the
complete new directory, nothing of an earlier run survives in the new one, and what a killed run
left beside it is removed next time. Plus the one slug helper every file name goes through."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirage.errors import MirageInputError
from mirage.io import files as fsio
from mirage.io.files import OUTPUT_MARKER, atomic_dir, remove_leftovers, slug, write_csv, write_text

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- slug


def test_slug_is_injective_readable_and_never_hidden():
    names = [
        "模型一",
        "模型二",
        "模型三",
        "a/b",
        "a_b",
        "a b",
        ".",
        "..",
        "_",
        "",
        "µ-large",
        "-large",
        "A",
        "a",
        "αβ (0-shot)",
        "γδ (0-shot)",
        "x" * 300,
        "x" * 301,
        "pythia-70m",
        "pythia-70m.",
        "__tmp__model",
    ]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert len({s.lower() for s in slugs}) == len(names)  # distinct on case-insensitive disks too
    for s in slugs:
        assert s and not s.startswith((".", "_", "-")) and len(s) <= 71 and s.isascii()
        assert "/" not in s and "\\" not in s and "\0" not in s
    assert slug("pythia-70m").startswith("pythia-70m-") and slug("µ-large").startswith("large-")
    assert slug("模型一") == slug("模型一")  # stable: the store finds its shards again


def test_figures_of_tasks_whose_names_slug_alike_get_one_file_each(tmp_path):
    from typer.testing import CliRunner

    from mirage.cli import app

    rows = [
        f"fam,m{i},{10 ** (6 + i)},{task},acc,{0.1 * i + (0.05 if task == 'γδ' else 0)}"
        for task in ("αβ", "γδ")
        for i in range(1, 5)
    ]
    table = tmp_path / "scores.csv"
    table.write_text("family,model,params,task,metric,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["analyze", str(table), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.stderr
    figures = sorted((tmp_path / "out" / "figures").glob("*.png"))
    assert len(figures) == 2 and len({f.read_bytes() for f in figures}) == 2  # two tasks, two different images
    assert not any(f.name.startswith(("_", ".")) for f in figures)


# ----------------------------------------------------------------------------- atomic_dir


def _write_run(tmp: Path, tag: str, files: tuple[str, ...]) -> None:
    """A run's outputs, written the way the commands write them (atomic files, a sub-folder)."""
    for name in files:
        write_text(tmp / name, f"{tag}:{name}\n")
    write_csv(tmp / "figures" / "curve.csv", __import__("pandas").DataFrame({"run": [tag]}))


def _snapshot(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


OLD_FILES = ("summary.json", "report.html", "predictions.csv", "lengths.csv")  # an earlier, different analysis
NEW_FILES = ("summary.json", "report.html", "curves.csv")


def _make_old(out: Path) -> dict[str, bytes]:
    with atomic_dir(out) as tmp:
        _write_run(tmp, "old", OLD_FILES)
    return _snapshot(out)


def _reference_new(base: Path) -> dict[str, bytes]:
    ref = base / "reference-new"
    with atomic_dir(ref) as tmp:
        _write_run(tmp, "new", NEW_FILES)
    return _snapshot(ref)


def test_existing_output_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    _make_old(out)
    with atomic_dir(out) as tmp:
        _write_run(tmp, "new", NEW_FILES)
    assert _snapshot(out) == _reference_new(tmp_path)
    assert not (out / "predictions.csv").exists()  # nothing of the earlier run inside the new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "reference-new"]  # no sibling left


def test_failed_run_leaves_the_old_directory_and_no_sibling(tmp_path):
    out = tmp_path / "out"
    old = _make_old(out)
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            _write_run(tmp, "new", NEW_FILES)
            raise RuntimeError("analysis failed half-way")
    assert _snapshot(out) == old and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_directory_mirage_did_not_write_is_never_deleted(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "my_notes.txt").write_text("precious")
    with pytest.raises(MirageInputError, match="not a mirage output directory"):
        with atomic_dir(mine) as tmp:
            _write_run(tmp, "new", NEW_FILES)
    assert (mine / "my_notes.txt").read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == [
        "results"
    ]
    # an empty directory, or one an older mirage wrote (report beside its summary), is replaced
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "report.html").write_text("old")
    (legacy / "summary.json").write_text("{}")
    with atomic_dir(legacy) as tmp:
        _write_run(tmp, "new", NEW_FILES)
    assert (legacy / OUTPUT_MARKER).is_file() and (legacy / "curves.csv").is_file()


def test_a_symlinked_output_replaces_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real"
    _make_old(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_dir(link) as tmp:
        _write_run(tmp, "new", NEW_FILES)
    assert link.is_symlink() and _snapshot(link) == _reference_new(tmp_path)


def _inject_failure(monkeypatch, nth: int, calls: list[str]) -> None:
    """Fail the ``nth`` rename-like call (os.replace, os.rename, the atomic exchange) of a run."""
    originals = {"replace": os.replace, "rename": os.rename, "_exchange": fsio._exchange}

    def wrap(name):
        def failing(*args, **kwargs):
            calls.append(name)
            if len(calls) == nth:
                raise OSError(5, f"injected failure of {name} call {nth}")
            return originals[name](*args, **kwargs)

        return failing

    monkeypatch.setattr(fsio.os, "replace", wrap("replace"))
    monkeypatch.setattr(fsio.os, "rename", wrap("rename"))
    monkeypatch.setattr(fsio, "_exchange", wrap("_exchange"))


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames-fallback"])
def test_failure_at_every_rename_of_the_swap_leaves_old_or_new(tmp_path, monkeypatch, exchange):
    if not exchange:  # a file system without RENAME_EXCHANGE: the old directory is renamed aside
        monkeypatch.setattr(fsio, "_exchange", lambda a, b: False)
    new = _reference_new(tmp_path / "ref")
    nth, seen_both = 1, set()
    while True:
        out = tmp_path / f"case{nth}" / "out"
        old = _make_old(out)
        calls: list[str] = []
        with monkeypatch.context() as m:
            _inject_failure(m, nth, calls)
            try:
                with atomic_dir(out) as tmp:
                    _write_run(tmp, "new", NEW_FILES)
                failed = False
            except OSError:
                failed = True
        state = _snapshot(out)
        assert state in (old, new), f"call {nth} ({calls[-1]}): a mixture of old and new"
        seen_both.add("new" if state == new else "old")
        # the next run cleans up whatever was left and replaces the directory
        with atomic_dir(out) as tmp:
            _write_run(tmp, "new", NEW_FILES)
        assert _snapshot(out) == new and [p.name for p in out.parent.iterdir()] == ["out"]
        if not failed:
            break  # nth is past the last rename-like call: every one of them has been failed once
        nth += 1
    assert nth > len(NEW_FILES) + 1 and seen_both == {"old", "new"}


def test_leftovers_are_removed_but_not_a_live_runs_directory(tmp_path):
    out = tmp_path / "out"
    _make_old(out)
    dead = [tmp_path / ".out.mirage-new-k1ll3d00", tmp_path / ".out.mirage-old-k1ll3d01", tmp_path / ".out.a1b2c3d4"]
    for d in dead:  # what SIGKILLed runs of this and older versions left
        d.mkdir()
        (d / "curves.csv").write_text("half")
    live = tmp_path / ".out.mirage-new-l1ve0000"
    live.mkdir()
    unrelated = tmp_path / ".out.bak"
    unrelated.mkdir()
    import fcntl

    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another run is still building it
    try:
        assert sorted(remove_leftovers(out)) == sorted(dead)
        assert live.is_dir() and unrelated.is_dir()
    finally:
        os.close(fd)
    assert remove_leftovers(out) == [live]


def test_a_kill_between_the_fallback_renames_is_repaired(tmp_path):
    out = tmp_path / "out"
    old = _make_old(out)
    aside = tmp_path / ".out.mirage-old-k1ll3d00"
    os.rename(out, aside)  # killed after renaming the old directory aside, before the new one came in
    (tmp_path / ".out.mirage-new-k1ll3d01").mkdir()
    remove_leftovers(out)
    assert _snapshot(out) == old and [p.name for p in tmp_path.iterdir()] == ["out"]


# ----------------------------------------------------------------------------- a real kill -9


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


def _analyze(inputs: list[Path], out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mirage.cli",
        "analyze",
        *map(str, inputs),
        "--out",
        str(out),
        "--max-figures",
        "1",
        "--quiet",
    ]


@pytest.mark.slow
@pytest.mark.skipif(not _strace_works(), reason="strace (apt install strace) is needed to SIGKILL at a system call")
def test_sigkill_at_each_rename_of_analyze_leaves_old_or_new(tmp_path, pythia_table):
    """Strace kills a real ``mirage analyze`` at its Nth rename-like system call (every file of
    the new directory, the exchange) and at the first unlink after it (removing the old one)."""
    import pandas as pd

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    table = pd.read_csv(pythia_table)
    lam = table[(table.family == "Pythia") & (table.shots == 0)]
    old_in, new_in = tmp_path / "old.csv", tmp_path / "new.csv"
    lam[lam.task == "lambada_openai"].to_csv(old_in, index=False)
    lam[lam.task == "arc_easy"].to_csv(new_in, index=False)
    reference = tmp_path / "reference"
    subprocess.run(_analyze([new_in], reference / "out"), env=env, check=True, capture_output=True)
    new = _snapshot(reference / "out")
    traced = tmp_path / "trace.txt"
    run_dir = tmp_path / "run"
    out = run_dir / "out"
    subprocess.run(_analyze([old_in], tmp_path / "old" / "out"), env=env, check=True, capture_output=True)
    old = _snapshot(tmp_path / "old" / "out")
    shutil.copytree(tmp_path / "old", tmp_path / "count", symlinks=True)  # count while replacing an old output
    subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            str(traced),
            "-e",
            "trace=rename,renameat,renameat2",
            *_analyze([new_in], tmp_path / "count" / "out"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    calls = [line.split()[1].split("(")[0] for line in traced.read_text().splitlines() if "(" in line and "= 0" in line]
    assert calls.count("rename") >= 5 and calls.count("renameat2") == 1  # the files ... then the exchange
    # strace counts each system call separately: kill at every rename, at the exchange, and at the
    # first unlink after it (the old directory being removed)
    points = [(name, n) for name in ("rename", "renameat2") for n in range(1, calls.count(name) + 1)] + [
        ("unlinkat", 1)
    ]
    for syscall, n in points:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(tmp_path / "old", run_dir, symlinks=True)
        killed = subprocess.run(
            [
                "strace",
                "-f",
                "-o",
                os.devnull,
                "-e",
                f"inject={syscall}:signal=KILL:when={n}",
                *_analyze([new_in], out),
            ],
            env=env,
            capture_output=True,
        )
        assert killed.returncode != 0, f"{syscall} #{n}: the run was not killed"
        state = _snapshot(out)
        assert state in (old, new), f"killed at {syscall} #{n}: the directory is neither the old nor the new one"
        # strace kills on entry to the call: before the exchange the old directory is there whole,
        # once the old one is being removed the new one is
        assert state == (new if syscall == "unlinkat" else old), f"killed at {syscall} #{n}"
        if syscall == "rename" and n not in (1, calls.count("rename")):
            continue  # the next run's clean-up is checked after the first and last file and the swap
        done = subprocess.run(_analyze([new_in], out), env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert _snapshot(out) == new and [p.name for p in run_dir.iterdir()] == ["out"], (
            f"killed at {syscall} #{n}: leftovers beside the output were not removed"
        )
