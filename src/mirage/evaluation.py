"""Run a model family on a task and store per-sample records, resumably.

Store layout (every reader that scans STORE for ``*.parquet`` sees only finished shards)::

    STORE/manifest.json                              what was run: model, task, config, versions
    STORE/<family>/<model>/<task>.parquet            one finished shard per (model, task)
    STORE/.parts/<family>/<model>/<task>-<hash>/.part-00000.parquet   chunks of an unfinished one

Samples are processed in fixed chunks (``chunk_size`` samples in task order). Each finished chunk
is written to a hidden part file atomically (temp file + ``os.replace``), so a run killed at any
moment -- SIGKILL included -- leaves only whole chunks behind. A rerun reuses those chunks and
computes only the rest; the shard is assembled from the parts and swapped into place atomically.
Because chunk boundaries and the batches inside a chunk do not depend on where a run stopped,
the resumed shard holds exactly the records of an uninterrupted run.

A shard carries the hash of its configuration (task content, model reference and weights, dtype,
generation settings) in its Parquet metadata. A changed task or model gives a new hash and is
recomputed; every other shard is reused. Batch size and device are left out of the hash: they
change results only by float rounding.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import MirageInputError
from .tasks import Task, load_task

SCALE_COLUMNS = ("params", "non_embedding_params", "train_tokens", "train_flops", "step")
MODEL_KEYS = {"name", "path", "id", "revision", *SCALE_COLUMNS}
FORMAT_VERSION = 1
_META_KEY = b"mirage_config_hash"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    ref: str  # absolute local path or hub id
    revision: str | None = None
    local: bool = True
    scales: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class FamilySpec:
    family: str
    models: tuple[ModelSpec, ...]
    scale: str = "params"  # the column that becomes the record's ``scale``
    source: str = ""


@dataclass(frozen=True)
class ShardResult:
    model: str
    path: Path
    n_records: int
    n_computed: int
    seconds: float


@dataclass(frozen=True)
class EvalResult:
    store: Path
    task: str
    shards: tuple[ShardResult, ...]


# ----------------------------------------------------------------------------- family spec

def load_family(path: str | Path) -> FamilySpec:
    """Read and validate a family YAML (see docs/eval.md); paths are relative to the file."""
    import yaml

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise MirageInputError("family file does not exist", src)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MirageInputError(f"malformed YAML: {str(exc).splitlines()[0]}", src) from None
    if not isinstance(data, dict):
        raise MirageInputError("expected a mapping with 'family' and 'models'", src)
    unknown = sorted(set(data) - {"family", "models", "scale"})
    if unknown:
        raise MirageInputError(f"unknown key(s) {', '.join(unknown)} (allowed: family, models, scale)", src)
    family = data.get("family")
    if not isinstance(family, str) or not family.strip():
        raise MirageInputError("'family' must be a non-empty string", src)
    scale = data.get("scale", "params")
    if scale not in SCALE_COLUMNS:
        raise MirageInputError(f"'scale' must be one of {', '.join(SCALE_COLUMNS)}, got {scale!r}", src)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise MirageInputError("'models' must be a non-empty list", src)
    specs, names = [], set()
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            raise MirageInputError(f"models[{i}] must be a mapping", src)
        name = m.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MirageInputError(f"models[{i}] needs a non-empty 'name'", src)
        where = f"model {name!r}"
        if name in names:
            raise MirageInputError(f"{where} appears twice", src)
        names.add(name)
        bad = sorted(set(m) - MODEL_KEYS)
        if bad:
            raise MirageInputError(f"{where}: unknown key(s) {', '.join(bad)} (allowed: {', '.join(sorted(MODEL_KEYS))})", src)
        if ("path" in m) == ("id" in m):
            raise MirageInputError(f"{where}: give exactly one of 'path' (local checkpoint) or 'id' (hub id)", src)
        if "path" in m:
            local = Path(str(m["path"])).expanduser()
            local = local if local.is_absolute() else (path.parent / local)
            if not local.exists():
                raise MirageInputError(f"{where}: path {str(m['path'])!r} does not exist (resolved to {local.resolve()})", src)
            if not (local / "config.json").is_file():
                raise MirageInputError(f"{where}: {str(m['path'])!r} is not a transformers checkpoint directory (no config.json)", src)
            ref, is_local = str(local.resolve()), True
        else:
            ref, is_local = str(m["id"]), False
        revision = m.get("revision")
        if revision is not None and not isinstance(revision, (str, int)):
            raise MirageInputError(f"{where}: 'revision' must be a string", src)
        scales = {}
        for key in SCALE_COLUMNS:
            if key in m:
                value = m[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                    raise MirageInputError(f"{where}: {key!r} must be a positive number, got {value!r}", src)
                scales[key] = float(value)
        if scale != "params" and scale not in scales:
            raise MirageInputError(f"{where}: the family's scale column {scale!r} is missing", src)
        specs.append(ModelSpec(name, ref, None if revision is None else str(revision), is_local, MappingProxyType(scales)))
    return FamilySpec(family.strip(), tuple(specs), scale, src)


# ----------------------------------------------------------------------------- evaluation

def evaluate_family(family: FamilySpec | str | Path, task: Task | str, store: str | Path, *, view: str | None = None,
                    batch_size: int = 16, device: str = "cpu", dtype: str = "float32",
                    max_new_tokens: int | None = None, chunk_size: int = 128, progress: bool = True,
                    threads: int | None = None, backend_factory: Callable[[ModelSpec], Any] | None = None) -> EvalResult:
    """Evaluate every model of ``family`` on ``task`` and write one record shard per model under
    ``store``; finished shards and chunks are reused. ``max_new_tokens`` defaults to the longest
    target in tokens plus 16. ``threads`` sets torch's CPU threads (1 is fastest for small models
    on a busy machine: idle threads spin while waiting for a core)."""
    from .backends import HFCausalLM

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from tokenizers
    fam = family if isinstance(family, FamilySpec) else load_family(family)
    tsk = task if isinstance(task, Task) else load_task(task, view)
    if chunk_size < 1:
        raise MirageInputError("chunk size must be at least 1", "--chunk-size")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise MirageInputError("max new tokens must be at least 1", "--max-new-tokens")
    if threads is not None:
        if threads < 1:
            raise MirageInputError("threads must be at least 1", "--threads")
        import torch

        torch.set_num_threads(threads)
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise MirageInputError("output exists and is not a directory", str(store))
    make_backend = backend_factory or (lambda m: HFCausalLM(m.ref, revision=m.revision, dtype=dtype, device=device, batch_size=batch_size))
    results, manifest_entries = [], {}
    for spec in fam.models:
        config = {
            "format": FORMAT_VERSION, "family": fam.family, "model": spec.name, "ref": spec.ref, "revision": spec.revision,
            "weights": _weights_fingerprint(spec), "dtype": dtype, "scale": fam.scale, "scales": dict(spec.scales),
            "task": tsk.name, "task_source": tsk.source, "task_fingerprint": tsk.fingerprint(), "view": tsk.view,
            "stop": list(tsk.stop), "max_new_tokens": max_new_tokens, "chunk_size": chunk_size,
        }
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
        started = time.perf_counter()
        shard, n_records, n_computed = _run_model(fam, spec, tsk, store, digest, chunk_size, max_new_tokens, make_backend, progress)
        results.append(ShardResult(spec.name, shard, n_records, n_computed, time.perf_counter() - started))
        manifest_entries[str(shard.relative_to(store))] = {"config_hash": digest, "n_records": n_records, "config": config}
    _update_manifest(store, manifest_entries)
    return EvalResult(store, tsk.name, tuple(results))


def _run_model(fam, spec, task, store, digest, chunk_size, max_new_tokens, make_backend, progress):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .fsio import write_parquet
    from .records import normalize_records

    shard = store / _slug(fam.family) / _slug(spec.name) / f"{_slug(task.name)}.parquet"
    parts_root = store / ".parts" / _slug(fam.family) / _slug(spec.name)
    parts_dir = parts_root / f"{_slug(task.name)}-{digest}"
    if shard.exists() and _shard_hash(shard) == digest:
        _drop_parts(parts_root, task.name, keep=None)
        return shard, pq.read_metadata(shard).num_rows, 0
    chunks = [task.samples[i:i + chunk_size] for i in range(0, len(task.samples), chunk_size)]
    done = {i for i in range(len(chunks)) if (parts_dir / _part_name(i)).exists()}
    todo = [i for i in range(len(chunks)) if i not in done]
    _drop_parts(parts_root, task.name, keep=parts_dir.name)  # stale configs of this (model, task) only
    n_computed = 0
    if todo:
        backend = make_backend(spec)
        params = spec.scales.get("params") or float(backend.num_parameters())
        scales = {**spec.scales, "params": params}
        limit = max_new_tokens or (max(len(backend.encode(s.target)) for s in task.samples) + 16)
        bar = _progress(total=len(task.samples), initial=sum(len(chunks[i]) for i in done),
                        desc=f"{fam.family}/{spec.name}", enabled=progress)
        try:
            for i in todo:
                table = _chunk_records(backend, fam, spec, task, chunks[i], scales, limit)
                write_parquet(parts_dir / _part_name(i), table)
                n_computed += len(chunks[i])
                bar.update(len(chunks[i]))
        finally:
            bar.close()
    parts = [pq.read_table(parts_dir / _part_name(i)) for i in range(len(chunks))]
    table = normalize_records(pa.concat_tables(parts), str(parts_dir))
    meta = dict(table.schema.metadata or {})
    meta[_META_KEY] = digest.encode()
    _write_table_atomic(shard, table.replace_schema_metadata(meta))
    shutil.rmtree(parts_dir, ignore_errors=True)
    return shard, table.num_rows, n_computed


def _chunk_records(backend, fam: FamilySpec, spec: ModelSpec, task: Task, samples, scales: dict, max_new_tokens: int):
    """One record per sample: target log-probs always; output and/or option scores per view."""
    import pyarrow as pa

    from .records import RECORD_SCHEMA

    prompts = [s.prompt for s in samples]
    scored = backend.score_targets(prompts, [s.target for s in samples])
    gens = backend.generate(prompts, task.stop, max_new_tokens) if task.generates else [None] * len(samples)
    opts = backend.score_choices(prompts, [s.choices for s in samples]) if task.scores_choices else [None] * len(samples)
    rows = []
    for s, ts, g, c in zip(samples, scored, gens, opts):
        row = {
            "family": fam.family, "model": spec.name, "scale": float(scales[fam.scale]), "task": task.name,
            "sample_id": s.sample_id, "prompt": s.prompt, "target": s.target,
            "output": g.text if g else None, "target_tokens": list(ts.tokens),
            "output_tokens": list(g.tokens) if g else None, "target_logprobs": [float(x) for x in ts.logprobs],
            "choices": list(s.choices) if c else None, "choice_logprobs": list(c.logprobs) if c else None,
            "choice_lengths": list(c.lengths) if c else None, "correct_choice": s.correct_choice if c else None,
            "shots": task.shots, "output_regex": s.output_regex,
        }
        for key in SCALE_COLUMNS:
            row[key] = scales.get(key)
        rows.append(row)
    extra = [("shots", pa.int64()), ("output_regex", pa.string())] + [(k, pa.float64()) for k in SCALE_COLUMNS]
    schema = pa.schema(list(RECORD_SCHEMA) + [pa.field(n, t) for n, t in extra])
    return pa.Table.from_pylist(rows, schema=schema)


# ----------------------------------------------------------------------------- store helpers

def _part_name(index: int) -> str:
    return f".part-{index:05d}.parquet"  # leading dot: readers scanning for *.parquet skip it


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip(".") or "_"


def _shard_hash(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except OSError:
        return None
    value = meta.get(_META_KEY)
    return value.decode() if value else None


def _drop_parts(parts_root: Path, task_name: str, keep: str | None) -> None:
    if not parts_root.is_dir():
        return
    prefix = f"{_slug(task_name)}-"
    for d in parts_root.iterdir():
        if d.is_dir() and d.name.startswith(prefix) and len(d.name) == len(prefix) + 16 and d.name != keep:
            shutil.rmtree(d, ignore_errors=True)


def _write_table_atomic(path: Path, table) -> None:
    import pyarrow.parquet as pq

    from .fsio import atomic_path

    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def _weights_fingerprint(spec: ModelSpec) -> str:
    from .backends import checkpoint_fingerprint

    return checkpoint_fingerprint(spec.ref) if spec.local else ""


def _update_manifest(store: Path, entries: dict) -> None:
    from .fsio import write_json

    path = store / "manifest.json"
    manifest = {"format": FORMAT_VERSION, "shards": {}}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(old, dict) and isinstance(old.get("shards"), dict):
                manifest["shards"].update(old["shards"])
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a manifest is a description; the shards' own hashes decide what is reused
    manifest["shards"].update(entries)
    manifest["versions"] = _versions()
    write_json(path, manifest)


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("mirage", "torch", "transformers", "tokenizers", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="sample", dynamic_ncols=True)


def summary_lines(result: EvalResult) -> list[str]:
    """Human-readable lines for the CLI."""
    lines = []
    for s in result.shards:
        reused = s.n_records - s.n_computed
        lines.append(f"{s.model}: {s.n_records} records ({s.n_computed} computed, {reused} reused) "
                     f"in {s.seconds:.1f} s -> {s.path}")
    return lines

