"""Run a model family on a task and store per-sample records, resumably.

Store layout, locking and crash recovery live in :mod:`mirage.evaluate.store`; in short::

    STORE/manifest.json                                   what was run: model, task, config, versions
    STORE/<family>/<model>/<task>.parquet                 one finished shard per (model, task)
    STORE/mirage-work/<family>/<model>/<task>/<hash>/part-00000.parquet-part   chunks of an unfinished one

where every name is a readable slug plus a hash of the exact name (``mirage.io.files.slug``).

Samples are processed in fixed chunks (``chunk_size`` samples in task order). Each finished chunk
is written to a part file atomically (temp file + ``os.replace``), so a run killed at any
moment -- SIGKILL included -- leaves only whole chunks behind. A rerun reuses those chunks and
computes only the rest; the shard is assembled from the parts and swapped into place atomically.
Because chunk boundaries and the batches inside a chunk do not depend on where a run stopped,
the resumed shard holds exactly the records of an uninterrupted run. Two runs on one store
cooperate through per-shard locks (each computes the shards nobody else holds, then reuses the
others'); temp files of killed runs are removed and unreadable shards or parts recomputed, each
with a one-line warning on stderr.

A shard carries the hash of its configuration in its Parquet metadata: the task's content (not
the spelling of its path), the model's weights (a local checkpoint's config and weight files; a
hub model's resolved commit, never just its revision string), dtype and generation settings. A
changed task or model gives a new hash and is recomputed; every other shard is reused. Batch size
and device are left out of the hash: they change results only by float rounding.

Before any model runs, every hub ``id:``/``revision:`` is resolved to a commit
(:mod:`mirage.evaluate.hub`) and every local checkpoint's weight files are checked, so a bad model
fails the run before any shard is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import MirageInputError
from ..io.family import SCALE_COLUMNS, FamilySpec, ModelSpec, load_family
from ..io.tasks import Sample, Task, load_task
from ..progress import ProgressBar, progress_bar
from ..schema.records import RECORD_SCHEMA, normalize_records
from .backends import Backend, ChoiceScore, Generation, HFCausalLM, check_checkpoint, checkpoint_fingerprint
from .hub import resolve_commit
from .openai_backend import OpenAICompletionsBackend
from .store import (
    CONFIG_HASH_KEY,
    StoreLock,
    drop_stale_parts,
    read_part,
    read_shard,
    remove_orphans,
    remove_superseded,
    shard_paths,
    update_manifest,
    write_table,
)
from .until_pass import SamplingStats, UntilPass, UntilPassShard, check_until_pass_task

FORMAT_VERSION = 2  # 2: injective store names, task hashed by content, hub models by commit


@dataclass(frozen=True)
class ShardResult:
    """One model's shard: where it is, how many records, how many computed now, and how long it took."""

    model: str
    path: Path
    n_records: int
    n_computed: int
    seconds: float
    samples_drawn: int = 0  # --until-pass: samples drawn in this run
    samples_reused: int = 0  # --until-pass: samples replayed from the journal of a killed run


@dataclass(frozen=True)
class EvalResult:
    """What ``mirage eval`` did: one shard per model in ``store`` and what was repaired on the way
    (unreadable shards or parts recomputed)."""

    store: Path
    task: str
    shards: tuple[ShardResult, ...]
    notes: tuple[str, ...] = ()

    def summary_lines(self) -> list[str]:
        """One line per shard for the terminal: records, computed and reused, time, path."""
        return summary_lines(self)


# ----------------------------------------------------------------------------- evaluation


def resolve_hub_commits(family: FamilySpec, *, cache_dir: str | Path | None = None) -> FamilySpec:
    """``family`` with every hub model's revision resolved to a commit (local models, server-backed
    ones and those already resolved unchanged); raises :class:`MirageInputError` naming the model and revision that cannot be resolved."""
    models = tuple(
        m
        if m.local or m.server is not None or m.commit
        else replace(
            m,
            commit=resolve_commit(
                m.ref, m.revision, where=f"model {m.name!r}", source=family.source or family.family, cache_dir=cache_dir
            ),
        )
        for m in family.models
    )
    return replace(family, models=models)


def check_local_weights(family: FamilySpec) -> None:
    """Every local checkpoint's weight files are whole (a truncated ``model.safetensors`` is
    found here, before any model runs, rather than after other models' shards were written)."""
    for m in family.models:
        if m.local:
            check_checkpoint(m.ref, where=f"model {m.name!r}")


def evaluate_family(
    family: FamilySpec | str | Path,
    task: Task | str,
    store: str | Path,
    *,
    view: str | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    chunk_size: int = 128,
    progress: bool = True,
    threads: int | None = None,
    backend_factory: Callable[[ModelSpec], Any] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    until_pass: UntilPass | None = None,
) -> EvalResult:
    """Evaluate every model of ``family`` on ``task`` and write one record shard per model under
    ``store``; finished shards and chunks are reused. ``max_new_tokens`` defaults to the longest
    target in tokens plus 16. ``threads`` sets torch's CPU threads (1 is fastest for small models
    on a busy machine: idle threads spin while waiting for a core).

    With the default backend (transformers), hub models are pinned to commits first
    (:func:`resolve_hub_commits`); a ``backend_factory`` receives the specs as given. Another run
    writing the same store is cooperated with: shards it holds are waited for and reused.

    A model with a ``server`` is evaluated by
    :class:`mirage.evaluate.openai_backend.OpenAICompletionsBackend`, with a request journal kept
    beside the shard's unfinished chunks. ``on_progress(model, done, total)`` is called after every
    finished chunk (in samples); a backend with a ``close`` method is closed after its model.

    With ``until_pass`` every item is also sampled until its first exact match or
    ``until_pass.limit`` attempts (:mod:`mirage.evaluate.until_pass`), in process only, into
    shards of their own task name (``<task>.until-pass``)."""
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
        import torch  # optional heavy dependency (mirage[eval]): only its thread count is set here

        torch.set_num_threads(threads)
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise MirageInputError("output exists and is not a directory", str(store))
    if until_pass is not None:
        tsk = until_pass_task(fam, tsk, until_pass)
    # everything that can fail for one model fails here, before any shard of another is written
    if backend_factory is None:
        fam = resolve_hub_commits(fam)
    check_local_weights(fam)
    make_backend = backend_factory or _default_backend_factory(dtype, device, batch_size)
    store.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def run(spec: ModelSpec) -> ShardResult:
        config = _shard_config(fam, spec, tsk, dtype, max_new_tokens, chunk_size)
        if until_pass is not None:
            config["until_pass"] = until_pass.identity()
        digest = _config_digest(config)
        started = time.perf_counter()
        report = (lambda done, total: on_progress(spec.name, done, total)) if on_progress else None
        shard, n_records, n_computed, sampled = _run_model(
            fam, spec, tsk, store, digest, chunk_size, max_new_tokens, make_backend, progress, note, report, until_pass
        )
        _record_in_manifest(store, shard, digest, n_records, config)
        seconds = time.perf_counter() - started
        return ShardResult(spec.name, shard, n_records, n_computed, seconds, sampled[0], sampled[1])

    results: dict[str, ShardResult] = {}
    waiting = []
    for spec in fam.models:  # first every shard no other run holds ...
        lock = StoreLock(shard_paths(store, fam.family, spec.name, tsk.name).lock)
        if not lock.acquire(blocking=False):
            waiting.append((spec, lock))
            continue
        with lock:
            results[spec.name] = run(spec)
    for spec, lock in waiting:  # ... then the ones another run was writing: usually reused
        print(
            f"{fam.family}/{spec.name}: another mirage eval is writing this shard; waiting for it",
            file=sys.stderr,
            flush=True,
        )
        with lock:
            results[spec.name] = run(spec)
    return EvalResult(store, tsk.name, tuple(results[s.name] for s in fam.models), tuple(notes))


def until_pass_task(fam: FamilySpec, task: Task, until_pass: UntilPass) -> Task:
    """The task under its until-pass name; the family must be evaluated in process."""
    check_until_pass_task(task)
    served = [m.name for m in fam.models if m.server is not None]
    if served:
        raise MirageInputError(
            f"samples in process only; model {served[0]!r} is evaluated by a server (backend: openai), "
            "which cannot draw mirage's seeded samples",
            "--until-pass",
        )
    return replace(task, name=until_pass.task_name(task.name))


def _shard_config(
    fam: FamilySpec, spec: ModelSpec, task: Task, dtype: str, max_new_tokens: int | None, chunk_size: int
) -> dict:
    """What the shard's records depend on, plus descriptive fields (``task_source``,
    ``revision``) that the manifest shows but the hash leaves out."""
    config = {
        "format": FORMAT_VERSION,
        "family": fam.family,
        "model": spec.name,
        "ref": spec.ref,
        "revision": spec.revision,
        "commit": spec.commit,
        "weights": _weights_fingerprint(spec),
        "dtype": dtype if spec.server is None else None,
        "scale": fam.scale,
        "scales": dict(spec.scales),
        "task": task.name,
        "task_source": task.source,
        "task_fingerprint": task.fingerprint(),
        "view": task.view,
        "stop": list(task.stop),
        "max_new_tokens": max_new_tokens,
        "chunk_size": chunk_size,
    }
    if spec.server is not None:  # keys added only when set, so in-process shards keep their hashes
        config["backend"] = spec.server.identity()  # never the address or the API key
    if spec.add_bos:
        config["add_bos"] = True
    return config


def _default_backend_factory(dtype: str, device: str, batch_size: int) -> Callable[[ModelSpec], Any]:
    """In-process transformers for a model without a server, else the OpenAI-compatible backend."""

    def make(spec: ModelSpec) -> Any:
        if spec.server is None:
            return HFCausalLM(
                spec.ref,
                revision=spec.commit or spec.revision,
                dtype=dtype,
                device=device,
                batch_size=batch_size,
                add_bos=spec.add_bos,
            )
        return OpenAICompletionsBackend(spec.server)

    return make


_DESCRIPTIVE = ("task_source", "revision")  # a path spelled differently, a branch name: not identity


def _config_digest(config: dict) -> str:
    hashed = {k: v for k, v in config.items() if k not in _DESCRIPTIVE}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]


def _run_model(
    fam: FamilySpec,
    spec: ModelSpec,
    task: Task,
    store: Path,
    digest: str,
    chunk_size: int,
    max_new_tokens: int | None,
    make_backend: Callable[[ModelSpec], Any],
    progress: bool,
    note: Callable[[str], None],
    report: Callable[[int, int], None] | None = None,
    until_pass: UntilPass | None = None,
) -> tuple[Path, int, int, tuple[int, int]]:
    """Reuse, resume or compute one shard; the caller holds its lock. Returns the shard, its
    records, the records computed now and (for ``until_pass``) the samples drawn and reused."""
    paths = shard_paths(store, fam.family, spec.name, task.name)
    remove_orphans(paths)
    finished, problem = read_shard(paths, digest, len(task.samples))
    if problem:
        note(problem)
    if finished is not None:
        drop_stale_parts(paths, keep=None)
        remove_superseded(paths, fam.family, spec.name, task.name)
        return paths.shard, finished.num_rows, 0, (0, 0)
    chunks = [task.samples[i : i + chunk_size] for i in range(0, len(task.samples), chunk_size)]
    drop_stale_parts(paths, keep=digest)  # stale configurations of this (model, task) only
    tables: dict[int, Any] = {}
    for i, chunk in enumerate(chunks):
        table, problem = read_part(paths.part(digest, i), [s.sample_id for s in chunk])
        if problem:
            note(problem)
        if table is not None:
            tables[i] = table
    todo = [i for i in range(len(chunks)) if i not in tables]
    n_computed = 0
    sampler: UntilPassShard | None = None
    if todo:
        backend = make_backend(spec)
        if hasattr(backend, "use_journal"):  # answered server requests live beside the chunks
            backend.use_journal(paths.journal(digest))
        params = spec.scales.get("params") or float(backend.num_parameters())
        scales = {**spec.scales, "params": params}
        limit = max_new_tokens or (max(len(backend.encode(s.target)) for s in task.samples) + 16)
        bar = _progress(
            total=len(task.samples),
            initial=sum(len(chunks[i]) for i in tables),
            desc=f"{fam.family}/{spec.name}",
            enabled=progress,
        )
        done_samples = sum(len(chunks[i]) for i in tables)
        try:
            if report:
                report(done_samples, len(task.samples))
            if until_pass is not None:  # its finished batches live in the journal beside the chunks
                sampler = UntilPassShard(backend, task, limit, until_pass, paths.journal(digest))
            for i in todo:
                tables[i] = _chunk_records(backend, fam, spec, task, chunks[i], scales, limit)
                if sampler is not None:
                    tables[i] = sampler.add_columns(tables[i], chunks[i], _sampling_progress(bar))
                write_table(paths.part(digest, i), tables[i])
                n_computed += len(chunks[i])
                done_samples += len(chunks[i])
                bar.update(len(chunks[i]))
                if report:
                    report(done_samples, len(task.samples))
        finally:
            bar.close()
            if sampler is not None:
                sampler.close()
            if hasattr(backend, "close"):
                backend.close()
    table = normalize_records(pa.concat_tables([tables[i] for i in range(len(chunks))]), str(paths.parts_dir(digest)))
    meta = dict(table.schema.metadata or {})
    meta[CONFIG_HASH_KEY] = digest.encode()
    write_table(paths.shard, table.replace_schema_metadata(meta))
    shutil.rmtree(paths.parts_dir(digest), ignore_errors=True)
    drop_stale_parts(paths, keep=None)
    remove_superseded(paths, fam.family, spec.name, task.name)
    stats = sampler.stats if sampler is not None else None
    return paths.shard, table.num_rows, n_computed, (stats.drawn, stats.reused) if stats else (0, 0)


def _sampling_progress(bar: Any) -> Callable[[SamplingStats], None]:
    """Show the samples drawn so far beside a shard's bar (until-pass chunks take long)."""

    def show(stats: SamplingStats) -> None:
        bar.set_postfix_str(f"{stats.drawn:,} samples drawn" + (f", {stats.reused:,} reused" if stats.reused else ""))

    return show


def _chunk_records(
    backend: Backend,
    fam: FamilySpec,
    spec: ModelSpec,
    task: Task,
    samples: Sequence[Sample],
    scales: dict[str, float],
    max_new_tokens: int,
) -> pa.Table:
    """One record per sample: target log-probs always; output and/or option scores per view."""
    prompts, targets = [s.prompt for s in samples], [s.target for s in samples]
    # a task that scores choices has them for every sample (checked when it is loaded)
    choices = [s.choices or () for s in samples] if task.scores_choices else None
    gens: Sequence[Generation | None] = [None] * len(samples)
    opts: Sequence[ChoiceScore | None] = [None] * len(samples)
    score_all = getattr(backend, "score_all", None)
    if score_all is not None:  # every prompt through the model once for all three requests
        scored, c, g = score_all(prompts, targets, choices, task.stop, max_new_tokens if task.generates else 0)
        opts, gens = c if c is not None else opts, g if g is not None else gens
    else:
        scored = backend.score_targets(prompts, targets)
        if task.generates:
            gens = backend.generate(prompts, task.stop, max_new_tokens)
        if choices is not None:
            opts = backend.score_choices(prompts, choices)
    rows = []
    for s, ts, g, c in zip(samples, scored, gens, opts):
        row = {
            "family": fam.family,
            "model": spec.name,
            "scale": float(scales[fam.scale]),
            "task": task.name,
            "sample_id": s.sample_id,
            "prompt": s.prompt,
            "target": s.target,
            "output": g.text if g else None,
            "target_tokens": list(ts.tokens),
            "output_tokens": list(g.tokens) if g else None,
            "target_logprobs": [float(x) for x in ts.logprobs],
            "choices": list(s.choices) if c and s.choices is not None else None,
            "choice_logprobs": list(c.logprobs) if c else None,
            "choice_lengths": list(c.lengths) if c else None,
            "correct_choice": s.correct_choice if c else None,
            "shots": task.shots,
            "output_regex": s.output_regex,
        }
        for key in SCALE_COLUMNS:
            row[key] = scales.get(key)
        rows.append(row)
    extra = [("shots", pa.int64()), ("output_regex", pa.string())] + [(k, pa.float64()) for k in SCALE_COLUMNS]
    schema = pa.schema(list(RECORD_SCHEMA) + [pa.field(n, t) for n, t in extra])
    return pa.Table.from_pylist(rows, schema=schema)


# ----------------------------------------------------------------------------- store helpers


def _weights_fingerprint(spec: ModelSpec) -> str:
    return checkpoint_fingerprint(spec.ref) if spec.local else ""


def _record_in_manifest(store: Path, shard: Path, digest: str, n_records: int, config: dict) -> None:
    entry = {"config_hash": digest, "n_records": n_records, "config": config}
    update_manifest(store, {shard.relative_to(store).as_posix(): entry}, _versions(), FORMAT_VERSION)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("mirage", "torch", "transformers", "tokenizers", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _progress(total: int, initial: int, desc: str, enabled: bool) -> ProgressBar:
    """Samples done of one shard: a bar on a terminal, plain lines in a file, on stderr."""
    return progress_bar(total, desc, unit="sample", initial=initial, enabled=enabled)


def summary_lines(result: EvalResult) -> list[str]:
    """Human-readable lines for the CLI."""
    lines = []
    for s in result.shards:
        reused = s.n_records - s.n_computed
        sampled = (
            f"; {s.samples_drawn:,} samples drawn, {s.samples_reused:,} reused"
            if s.samples_drawn or s.samples_reused
            else ""
        )
        lines.append(
            f"{s.model}: {s.n_records} records ({s.n_computed} computed, {reused} reused{sampled}) "
            f"in {s.seconds:.1f} s -> {s.path}"
        )
    return lines
