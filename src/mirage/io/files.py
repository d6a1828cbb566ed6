"""Atomic output: readers never see a half-written file or directory.

Files are written to a temporary sibling and renamed into place. An output directory is built
whole beside the old one and swapped in with one atomic exchange (``renameat2`` with
``RENAME_EXCHANGE`` on Linux), so at every instant its name holds either the complete old
directory or the complete new one, and nothing of an earlier run survives inside the new one.
Leftovers of killed runs (``.NAME.mirage-new-XXXXXXXX`` siblings) are removed the next time the
same output is written; a sibling another live run is still building is locked and left alone.

``slug`` is the one place where names (models, tasks, figure titles) become file names.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MirageInputError
from .csv_text import csv_blocks

# Marks a directory as a complete mirage output, so that a later run may replace it whole. A
# directory without it (and without the files an older mirage wrote) is never deleted.
OUTPUT_MARKER = ".mirage-output"
_FOREIGN_DIR = (
    f"exists and is not a mirage output directory (no {OUTPUT_MARKER} inside), so it is not replaced; "
    "remove it or choose another output directory"
)
_SLUG_HASH_CHARS = 10  # 40 bits: collisions among a store's names are not a practical concern
_SLUG_MAX_READABLE = 60
_RENAME_EXCHANGE = 2  # linux/fs.h


def slug(name: str, max_readable: int = _SLUG_MAX_READABLE) -> str:
    """A file name for ``name``: a readable ASCII part plus a short hash of the exact name.

    Injective in practice (two different names differ in the hash, even when their readable
    parts agree: ``a/b`` and ``a_b``, ``.`` and ``..``, ``模型一`` and ``模型二``, ``A`` and ``a``
    on a case-insensitive disk), never empty, never starting with ``.``, ``_`` or ``-`` (which
    directory scans skip or tools read as options), and at most ``max_readable + 11`` characters.
    """
    text = str(name)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_SLUG_HASH_CHARS]
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    readable = re.sub(r"[^A-Za-z0-9.=-]+", "_", ascii_text)
    readable = readable[:max_readable].lstrip("._-").rstrip("._-")
    return f"{readable}-{digest}" if readable else digest


# ----------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", *, hidden: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file is ``.NAME.XXXXXXXX<suffix>`` (``hidden``, skipped by directory scans) or
    ``NAME.mirage-tmp-XXXXXXXX.tmp`` (for places, like the record store, where no name may start
    with a dot; its ``.tmp`` ending keeps readers away from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hidden:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.mirage-tmp-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def is_temp_of(name: str, target: str) -> bool:
    """Whether ``name`` is a temporary file ``atomic_path`` made for a file named ``target``
    (either form, and the hidden form older mirage versions used)."""
    return (name.startswith(f"{target}.mirage-tmp-") and name.endswith(".tmp")) or bool(
        re.fullmatch(rf"\.{re.escape(target)}\.[a-z0-9_]{{8}}(\..+)?", name)
    )


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write indented JSON atomically (numpy values and paths included)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a table as CSV (no index) atomically (:mod:`mirage.io.csv_text`: what ``to_csv``
    writes, floats as their shortest exact decimal)."""
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "wb") as out:
        for block in csv_blocks(frame):
            out.write(block)


def _repeats(kind: pa.DataType) -> bool:
    """Whether a column of this type is worth a dictionary: names and ids, as text."""
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_dictionary(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def write_parquet(path: str | os.PathLike, table: Any, *, hidden: bool = True) -> None:
    """Write a pandas DataFrame or pyarrow Table to Parquet atomically."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path, suffix=".parquet", hidden=hidden) as tmp:
        pq.write_table(table, tmp)


class ParquetSink:
    """Tables appended one after another to one Parquet file (a row group or more each), so a
    table too large for memory is written piece by piece; the file appears whole at
    :meth:`close` (written under a temporary name, then renamed) or not at all."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, table: pd.DataFrame | pa.Table) -> None:
        """Append ``table`` (a DataFrame is converted with the first one's schema)."""
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, schema=self._schema, preserve_index=False)
        if self._writer is None:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".parquet", dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            self._schema = table.schema
            # dictionary pages only for text columns: per-sample floats rarely repeat, and trying a
            # dictionary for each of them first took most of the writing time (345 -> 145 ms per
            # 400,000 samples, the file 1% larger)
            text = [f.name for f in self._schema if _repeats(f.type)]
            self._writer = pq.ParquetWriter(self._tmp, self._schema, use_dictionary=text)
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> bool:
        """Finish the file and move it into place; False (and no file) when nothing was written."""
        if self._writer is None or self._tmp is None:
            return False
        self._writer.close()
        os.chmod(self._tmp, 0o666 & ~_umask())
        os.replace(self._tmp, self.path)
        self._writer = None
        return True

    def abort(self) -> None:
        """Drop what was written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()


# ----------------------------------------------------------------------------- directories


def is_mirage_output(directory: Path) -> bool:
    """A directory mirage may replace: it carries the output marker, or it is what an older
    mirage wrote (a report beside its summary, or a trained checkpoint with its training log)."""

    def has(name: str) -> bool:
        return (directory / name).is_file()

    return (
        has(OUTPUT_MARKER)
        or (has("report.html") and (has("summary.json") or has("theory.csv")))
        or (has("training.json") and has("config.json"))
    )


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replaces: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a whole output directory in a temporary sibling, then swap it in for ``path``.

    An existing ``path`` is replaced whole (no file of the earlier run survives in the new one)
    if it is empty, a mirage output (:func:`is_mirage_output`) or accepted by ``replaces``;
    anything else is refused with :class:`MirageInputError` before any work, so a mistyped
    ``--out`` never deletes a user's own directory. A symlink is followed: the directory it
    points to is replaced and the link kept. If the body raises, the old directory is untouched.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise MirageInputError("exists and is not a directory", str(path))
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _flocked(parent):  # no other run's clean-up runs between our mkdtemp and our lock
        remove_leftovers(path)
        if path.is_dir() and any(path.iterdir()) and not (is_mirage_output(path) or (replaces and replaces(path))):
            raise MirageInputError(_FOREIGN_DIR, str(path))
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.mirage-new-", dir=parent))
        lock_fd = os.open(tmp, os.O_RDONLY)
        _flock(lock_fd, blocking=True)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(
            "written by mirage; the next run writing here replaces this directory whole\n", encoding="utf-8"
        )
        _fsync_tree(tmp)
        _swap_in(tmp, path)  # afterwards ``tmp`` names the old directory (if there was one)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        os.close(lock_fd)


_LEFTOVER = r"\.{name}\.(?:mirage-(?:new|old)-)?[a-z0-9_]{{8}}"


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings killed runs left beside ``path`` (``.NAME.mirage-new-*``,
    ``.NAME.mirage-old-*`` and the ``.NAME.XXXXXXXX`` of older versions) unless a live run holds
    them; if a kill fell between the two renames of the fallback swap, put the old directory
    back first. Returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(_LEFTOVER.format(name=re.escape(path.name)))
    found = sorted(
        (p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()),
        key=lambda p: p.stat().st_mtime,
    )
    if not path.exists():
        olds = [p for p in found if ".mirage-old-" in p.name]
        if olds:
            os.rename(olds[-1], path)
            found.remove(olds[-1])
    removed = []
    for leftover in found:
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _flock(fd, blocking=False):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
        finally:
            os.close(fd)
    return removed


def _swap_in(new: Path, path: Path) -> None:
    """Make ``path`` name ``new``. With an old directory there, exchange the two atomically
    (``new`` then names the old one); where the system cannot exchange, rename the old one
    aside first (a kill between the two renames is repaired by :func:`remove_leftovers`)."""
    if not path.exists():
        os.rename(new, path)
        return
    if _exchange(new, path):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.mirage-old-", dir=path.parent))
    os.rmdir(aside)
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)  # put the old directory back before reporting the failure
        raise
    try:
        os.rename(aside, new)  # so the caller's clean-up of ``new`` removes the old directory
    except OSError:
        shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two directory entries; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # this file system cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory of ``root`` to disk before it is swapped in, so a power
    cut after the swap cannot leave the new name holding empty files."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _flock(fd: int, blocking: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def _flocked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        _flock(fd, blocking=True)
        yield
    finally:
        os.close(fd)


def ensure_writable(path: str | os.PathLike, option: str, *, replaced_whole: bool = False) -> None:
    """Fail now, in one line, if ``path`` (a directory to write into, or to create) cannot be
    written -- before any work is done. With ``replaced_whole`` (outputs built beside the old
    directory and swapped in, :func:`atomic_dir`) it is the parent that must be writable. The
    nearest existing directory is probed with a temporary file that is removed at once; nothing
    is created."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise MirageInputError("a file stands where an output directory is needed", str(blocker))
    if replaced_whole and path.is_dir() and any(path.iterdir()) and not is_mirage_output(path):
        raise MirageInputError(_FOREIGN_DIR, str(path))
    start = path.parent if replaced_whole else path
    probe = next((p for p in (start, *start.parents) if p.is_dir()), Path("."))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mirage-write-test-", dir=probe)
    except OSError as exc:
        raise MirageInputError(
            f"cannot write {path}: {probe} is not writable ({(exc.strerror or str(exc)).lower()})", option
        ) from None
    os.close(fd)
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """JSON for what ``json`` cannot write itself: numpy numbers and arrays, paths; a non-finite
    float becomes its string (``"inf"``), as JSON has no infinity."""
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        f = float(obj)
        return f if np.isfinite(f) else str(f)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
