"""The record store of ``mirage eval``: where shards live, who writes them, what survives a crash.

Layout. Every name below is :func:`mirage.io.files.slug` of the family, model or task name (a
readable part plus a hash of the exact name), so two names never share a path -- ``a/b`` and
``a_b``, ``模型一`` and ``模型二`` -- and no path component starts with ``.`` or ``_``::

    STORE/manifest.json                                  what was run (descriptive only)
    STORE/<family>/<model>/<task>.parquet                one finished shard per (model, task)
    STORE/mirage-work/<family>/<model>/<task>.lock       the shard's lock
    STORE/mirage-work/<family>/<model>/<task>/<config hash>/part-00000.parquet-part
                                                         chunks of an unfinished shard
    STORE/mirage-work/<family>/<model>/<task>/<config hash>/requests.journal
                                                         its answered server requests (mirage.evaluate.journal)
    STORE/mirage-work/manifest.lock                      serialises manifest updates

Readers take ``.parquet``, ``.jsonl``, ``.csv`` and ``.json`` files only, so nothing under
``mirage-work`` (``.parquet-part``, ``.lock``, ``*.mirage-tmp-*.tmp``) is ever read as data.

**Two runs on one store.** A run writes a shard only while it holds that shard's lock (``flock``,
which the kernel releases when the process ends, however it ends). Runs cooperate: each takes the
shards nobody holds, then waits for the others' and reuses them, so both finish with the same
records and no shard is computed twice.

**Crashes.** Every file is written to a ``NAME.mirage-tmp-XXXXXXXX.tmp`` sibling and renamed into
place. Temporary files a killed run left (and the hidden ``.NAME.XXXXXXXX.parquet`` of older
versions) are removed by the next run that takes the shard's lock. Shards and parts are written
with Parquet page checksums; one that cannot be read back whole (truncated, corrupted) is reported
in one line and recomputed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MirageInputError
from ..io.files import atomic_path, is_temp_of, json_default, slug

WORK_DIR = "mirage-work"
PART_SUFFIX = ".parquet-part"
CONFIG_HASH_KEY = b"mirage_config_hash"
_PART_NAME = re.compile(r"part-(\d{5})" + re.escape(PART_SUFFIX))
JOURNAL_NAME = "requests.journal"  # a server-backed shard's answered requests, beside its chunks


@dataclass(frozen=True)
class ShardPaths:
    """Where one (family, model, task) shard, its lock and its unfinished chunks live."""

    store: Path
    shard: Path
    work: Path  # one sub-directory per configuration hash, holding that configuration's chunks
    lock: Path

    def parts_dir(self, digest: str) -> Path:
        """The unfinished chunks of the configuration ``digest``."""
        return self.work / digest

    def part(self, digest: str, index: int) -> Path:
        """The part file of chunk ``index``."""
        return self.work / digest / f"part-{index:05d}{PART_SUFFIX}"

    def journal(self, digest: str) -> Path:
        """The request journal of a server-backed shard."""
        return self.work / digest / JOURNAL_NAME


def shard_paths(store: str | Path, family: str, model: str, task: str) -> ShardPaths:
    """The paths of the shard of ``model`` (of ``family``) on ``task`` in ``store``."""
    store = Path(store)
    rel = Path(slug(family)) / slug(model)
    name = slug(task)
    return ShardPaths(
        store, store / rel / f"{name}.parquet", store / WORK_DIR / rel / name, store / WORK_DIR / rel / f"{name}.lock"
    )


# ----------------------------------------------------------------------------- locks


class StoreLock:
    """An exclusive ``flock`` on one lock file (created if missing, never deleted: deleting a
    lock file while another process waits on it would let two runs hold "the" lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, return False at once if another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:  # e.g. a network file system without locks
            os.close(fd)
            raise MirageInputError(
                f"cannot lock the record store ({(exc.strerror or str(exc)).lower()}), so "
                "concurrent runs could not be kept apart",
                str(self.path),
            ) from None
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the lock (closing the descriptor drops the flock)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "StoreLock":
        if self._fd is None:
            self.acquire(blocking=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


# ----------------------------------------------------------------------------- reading back


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_shard(paths: ShardPaths, digest: str, n_rows: int) -> tuple[Any, str | None]:
    """The finished shard's table if it holds this configuration's ``n_rows`` records (else
    None), and a note when it existed but could not be read back whole."""
    if not paths.shard.exists():
        return None, None
    try:
        table = pq.read_table(paths.shard, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        return None, f"{paths.shard}: unreadable shard ({_first_line(exc)}); recomputing it"
    if (table.schema.metadata or {}).get(CONFIG_HASH_KEY, b"").decode() != digest:
        return None, None  # another configuration: recomputed without comment, as designed
    if table.num_rows != n_rows:
        return None, f"{paths.shard}: holds {table.num_rows} records, expected {n_rows}; recomputing it"
    return table, None


def read_part(path: Path, sample_ids: Sequence[str]) -> tuple[Any, str | None]:
    """A finished chunk's table if it holds exactly ``sample_ids`` (else None), and a note
    when it existed but is unreadable or wrong (it is then deleted, to be recomputed)."""
    if not path.exists():
        return None, None
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        ids = table.column("sample_id").to_pylist()
    except (OSError, pa.ArrowException, KeyError) as exc:
        problem = _first_line(exc)
    else:
        if ids == list(sample_ids):
            return table, None
        problem = f"{len(ids)} records that are not this chunk's {len(sample_ids)}"
    path.unlink(missing_ok=True)
    return None, f"{path}: unreadable part file ({problem}); recomputing its chunk"


# ----------------------------------------------------------------------------- writing


def write_table(path: Path, table: Any) -> None:
    """Write a Parquet file with page checksums, atomically, under a name readers skip."""
    with atomic_path(path, hidden=False) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


def remove_orphans(paths: ShardPaths) -> list[Path]:
    """Temporary files killed runs left for this shard (call with its lock held): temp siblings
    of the shard, and anything in its chunk directories that is not a finished part."""
    removed = []
    if paths.shard.parent.is_dir():
        for f in paths.shard.parent.iterdir():
            if f.is_file() and is_temp_of(f.name, paths.shard.name):
                f.unlink(missing_ok=True)
                removed.append(f)
    if paths.work.is_dir():
        for f in paths.work.rglob("*"):
            if f.is_file() and not _PART_NAME.fullmatch(f.name) and f.name != JOURNAL_NAME:
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed


def drop_stale_parts(paths: ShardPaths, keep: str | None) -> None:
    """Remove the chunks of every other configuration of this shard (call with its lock held)."""
    if not paths.work.is_dir():
        return
    for d in paths.work.iterdir():
        if d.name != keep:
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
    if keep is None:
        _rmdir_empty(paths.work)


def _rmdir_empty(*dirs: Path) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass  # not empty, or already gone


def update_manifest(store: Path, entries: dict[str, Any], versions: dict[str, Any], format_version: int) -> None:
    """Merge ``entries`` into ``STORE/manifest.json`` under the manifest lock, so concurrent
    runs never lose each other's entries; a manifest that does not parse is rebuilt."""
    path = store / "manifest.json"
    with StoreLock(store / WORK_DIR / "manifest.lock"):
        for f in store.iterdir():
            if f.is_file() and is_temp_of(f.name, path.name):
                f.unlink(missing_ok=True)
        manifest: dict[str, Any] = {"format": format_version, "shards": {}}
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(old, dict) and isinstance(old.get("shards"), dict):
                manifest["shards"].update(old["shards"])
        except (OSError, ValueError):
            pass  # missing or unreadable: a manifest describes; the shards' own hashes decide reuse
        manifest["shards"].update(entries)
        manifest["versions"] = versions
        with atomic_path(path, hidden=False) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2, default=json_default) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- older stores


def _legacy_slug(name: str) -> str:
    """How mirage 0.1 named store paths (not injective: this is why the layout changed)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip(".") or "_"


def remove_superseded(paths: ShardPaths, family: str, model: str, task: str) -> list[Path]:
    """Delete what mirage 0.1 stored for exactly this (family, model, task) under its old names,
    once the new shard exists, so no reader sees the same records twice. A 0.1 shard is only
    removed if its records really are this model's (old names could collide)."""
    store, removed = paths.store, []
    old_dir = store / _legacy_slug(family) / _legacy_slug(model)
    old = old_dir / f"{_legacy_slug(task)}.parquet"
    if old.is_file() and old.resolve() != paths.shard.resolve():
        try:
            marked = CONFIG_HASH_KEY in (pq.read_schema(old).metadata or {})
            head = pq.read_table(old, columns=["family", "model", "task"]).slice(0, 1).to_pylist()
        except (OSError, pa.ArrowException, KeyError, ValueError):
            marked, head = False, []
        if marked and head == [{"family": family, "model": model, "task": task}]:
            old.unlink(missing_ok=True)
            removed.append(old)
    if old_dir.is_dir():
        for f in old_dir.iterdir():
            if f.is_file() and is_temp_of(f.name, old.name):
                f.unlink(missing_ok=True)
    old_parts = store / ".parts" / _legacy_slug(family) / _legacy_slug(model)
    if old_parts.is_dir():
        prefix = f"{_legacy_slug(task)}-"
        for d in old_parts.iterdir():
            if d.is_dir() and d.name.startswith(prefix) and len(d.name) == len(prefix) + 16:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    _rmdir_empty(old_dir, old_dir.parent, old_parts, old_parts.parent, store / ".parts")
    return removed
