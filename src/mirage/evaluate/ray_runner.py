"""``mirage eval --ray``: every (model, task) shard of a family as one Ray task.

Each task runs :func:`mirage.evaluation.evaluate_family` for its one model, so a shard is written
exactly as a single process writes it (same chunks, same parts, same atomic swap, same hash) into
the shared store, which every node must see at the same path (a network file system). A task asks
the cluster for the model's ``resources`` from the family spec (``num_cpus``, ``num_gpus``,
``memory``; one CPU by default); Ray places it and sets ``CUDA_VISIBLE_DEVICES``, so ``--device
cuda`` means the GPU Ray gave it. Torch uses as many threads as the task has CPUs unless
``threads`` is given.

Workers report every finished chunk to a small progress actor; the driver shows one line (or bar,
on a terminal) per shard on stderr. A worker that dies (killed, out of memory, node lost) is
retried by Ray up to ``max_retries`` times and resumes from the shard's finished chunks (and, for
a server-backed model, from its answered requests); a rerun after a failed run does the same.
When every shard is done the driver passes over the family once more in one process, which finds
every shard finished, computes nothing, and writes the manifest exactly as a single-process run
does: the store ends identical to one evaluated without Ray.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import MirageInputError
from ..io.family import FamilySpec, ModelSpec, load_family
from ..io.tasks import Task, load_task
from .run import EvalResult, ShardResult, check_local_weights, evaluate_family, resolve_hub_commits, until_pass_task
from .until_pass import UntilPass

LOCAL = "local"  # --ray with no address: start a cluster on this machine


def import_ray() -> Any:
    """The ``ray`` module, or one clear error saying how to install it."""
    try:
        import ray  # optional heavy dependency (mirage[ray]), loaded only for --ray
    except ImportError:
        raise MirageInputError("Ray is not installed; install the extra: pip install 'mirage[ray]'", "--ray") from None
    return ray


def evaluate_shard(family: FamilySpec, task: Task, store: str, options: dict, progress: Any) -> ShardResult:
    """The body of one Ray task: one model of ``family`` on ``task`` into ``store``."""
    import ray  # optional heavy dependency (mirage[ray]); this runs in a Ray worker

    def report(model: str, done: int, total: int) -> None:
        progress.update.remote(model, done, total, os.getpid())

    options = dict(options)
    if options.get("threads") is None:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        options["threads"] = max(1, int(cpus))
    result = evaluate_family(family, task, Path(store), progress=False, on_progress=report, **options)
    return result.shards[0]


class _Progress:
    """Ray actor: the latest (done, total, pid) of every shard."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, int, int]] = {}

    def update(self, model: str, done: int, total: int, pid: int) -> None:
        self.state[model] = (done, total, pid)

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        return dict(self.state)


class _ProgressView:
    """Per-shard progress on stderr: bars on a terminal, plain lines (on change, at most every
    ``interval`` seconds per shard) when stderr is a file."""

    def __init__(self, family: str, models: list[str], task: str, enabled: bool, interval: float = 5.0):
        self.enabled, self.interval, self.family, self.task = enabled, interval, family, task
        self.tty = enabled and sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        self.last: dict[str, tuple[int, float]] = {}
        if self.tty:
            from tqdm.auto import tqdm  # optional dependency (mirage[eval]): bars only on a terminal

            for i, m in enumerate(models):
                self.bars[m] = tqdm(
                    total=0, desc=f"{family}/{m}", unit="sample", position=i, dynamic_ncols=True, leave=True
                )

    def show(self, state: dict[str, tuple[int, int, int]], finished: set[str]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        for model, (done, total, _pid) in state.items():
            if self.tty:
                bar = self.bars[model]
                bar.total = total
                bar.n = done
                bar.refresh()
                continue
            seen, when = self.last.get(model, (-1, 0.0))
            if done != seen and (now - when >= self.interval or done == total or model in finished):
                print(f"{self.family}/{model} on {self.task}: {done}/{total} samples", file=sys.stderr, flush=True)
                self.last[model] = (done, now)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def evaluate_family_ray(
    family: FamilySpec | str | Path,
    task: Task | str,
    store: str | Path,
    *,
    address: str | None = LOCAL,
    view: str | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    chunk_size: int = 128,
    progress: bool = True,
    threads: int | None = None,
    max_retries: int = 3,
    until_pass: UntilPass | None = None,
) -> EvalResult:
    """:func:`mirage.evaluation.evaluate_family` with one Ray task per model. ``address``:
    ``"local"`` (or ``None``) starts a cluster here, ``"auto"`` joins the running one, any other
    value is passed to ``ray.init(address=...)``; an already initialised Ray is used as it is."""
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")  # else Ray replaces builtins.print in this process
    ray = import_ray()
    fam = family if isinstance(family, FamilySpec) else load_family(family)
    tsk = task if isinstance(task, Task) else load_task(task, view)
    store = Path(store).resolve()
    if store.exists() and not store.is_dir():
        raise MirageInputError("output exists and is not a directory", str(store))
    if max_retries < 0:
        raise MirageInputError("max retries must be at least 0", "--ray-retries")
    # pinned once, here: every worker and the final pass hash the same commit of a hub model
    fam = resolve_hub_commits(fam)
    check_local_weights(fam)
    if until_pass is not None:
        until_pass_task(fam, tsk, until_pass)  # checked here; every worker names its shards the same way
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "device": device,
        "dtype": dtype,
        "max_new_tokens": max_new_tokens,
        "chunk_size": chunk_size,
        "threads": threads,
        "until_pass": until_pass,
    }
    started_here = False
    if not ray.is_initialized():
        try:
            local = address in (None, LOCAL)
            ray.init(
                address=None if local else address,
                include_dashboard=False,
                logging_level="warning",
                log_to_driver=False,
                runtime_env=_local_runtime_env() if local else None,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MirageInputError(
                f"cannot reach a Ray cluster: {str(exc).splitlines()[0]}", f"--ray {address}"
            ) from None
        started_here = True
    try:
        results = _run_shards(ray, fam, tsk, store, options, progress, max_retries)
        # every shard is finished: one single-process pass computes nothing and writes the
        # manifest exactly as an evaluation without Ray does
        final = evaluate_family(fam, tsk, store, progress=False, backend_factory=_no_backend, **options)
    finally:
        if started_here:
            ray.shutdown()
    shards = tuple(
        replace(
            s,
            n_computed=results[s.model].n_computed,
            seconds=results[s.model].seconds,
            samples_drawn=results[s.model].samples_drawn,
            samples_reused=results[s.model].samples_reused,
        )
        for s in final.shards
    )
    return EvalResult(final.store, final.task, shards, final.notes)


def _local_runtime_env() -> dict:
    """Workers of a cluster started here import the same mirage as this driver (which may come
    from a checkout on PYTHONPATH rather than from the installed package)."""
    here = str(Path(__file__).resolve().parents[2])  # the directory that holds the mirage package
    paths = [here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def _run_shards(
    ray: Any, fam: FamilySpec, tsk: Task, store: Path, options: dict, progress: bool, max_retries: int
) -> dict[str, ShardResult]:
    tracker = ray.remote(num_cpus=0)(_Progress).remote()
    remote = ray.remote(evaluate_shard)
    pending: dict[Any, ModelSpec] = {}
    for spec in fam.models:
        resources = {"num_cpus": 1, **spec.resources.ray_options()}
        one = FamilySpec(fam.family, (spec,), fam.scale, fam.source)
        ref = remote.options(
            max_retries=max_retries, retry_exceptions=False, name=f"mirage {fam.family}/{spec.name}", **resources
        ).remote(one, tsk, str(store), options, tracker)
        pending[ref] = spec
    view = _ProgressView(fam.family, [m.name for m in fam.models], tsk.name, progress)
    results: dict[str, ShardResult] = {}
    failures: list[MirageInputError] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    results[spec.name] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - every Ray failure becomes one line below
                    failures.append(_failure(exc, fam, spec, tsk))
            state = ray.get(tracker.snapshot.remote())
            for name, res in results.items():
                state[name] = (res.n_records, res.n_records, state.get(name, (0, 0, 0))[2])
            view.show(state, set(results))
    finally:
        view.close()
        ray.kill(tracker)
    if failures:
        more = f" ({len(failures) - 1} more shard(s) failed too)" if len(failures) > 1 else ""
        first = failures[0]
        raise MirageInputError(f"{first.args[0]}{more}; finished chunks are kept: rerun to resume")
    return results


def _failure(exc: Exception, fam: FamilySpec, spec: ModelSpec, tsk: Task) -> MirageInputError:
    """One line for a failed shard: the worker's own MirageInputError, or what Ray reported."""
    import ray  # optional heavy dependency (mirage[ray]), loaded only for --ray

    where = f"shard {fam.family}/{spec.name} on {tsk.name}"
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, MirageInputError):
        return MirageInputError(f"{where}: {cause}")
    if isinstance(
        exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)
    ):
        return MirageInputError(f"{where}: the Ray worker died ({type(exc).__name__})")
    text = str(cause if cause is not None else exc).strip().splitlines()
    return MirageInputError(f"{where}: {type(cause or exc).__name__}: {text[-1] if text else ''}")


def _no_backend(spec: ModelSpec) -> Any:
    raise MirageInputError("a shard was not finished by its Ray task", f"model {spec.name!r}")
