"""mirage: is an emergent ability real, or an artifact of the metric it was scored with?

Every command is a thin layer over a Python function (named in its help); heavy imports happen
inside the commands so `mirage --help` stays fast.
"""

from __future__ import annotations

import errno
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, List, Optional, TypeVar

import typer

# the public API: its names load on first use (mirage.__getattr__), so `mirage --help` imports
# neither pandas nor torch
import mirage

from .errors import MirageInputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mirage {mirage.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print mirage's version and exit."
    ),
) -> None:
    """Options before the command."""


# the options every command shares
QUIET_HELP = "Print no progress and no summary: only the report path (or, with --json, the JSON)."
JSON_HELP = "Print the run's summary as one JSON document on stdout (the human summary goes to stderr)."
STATIC_HELP = "Write report.html with PNG figures (for papers) instead of interactive charts."


def _path_errnos() -> frozenset[int]:
    names = (
        "EROFS",
        "EACCES",
        "EPERM",
        "ENOSPC",
        "EDQUOT",
        "EFBIG",
        "ENAMETOOLONG",
        "ELOOP",
        "EXDEV",
        "EBUSY",
        "EMLINK",
    )
    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


# OSErrors about a path (read-only file system, no permission, disk full ...): the user's
# environment, reported as one line naming the path
_PATH_ERRNOS = _path_errnos()


def _writable(out: Path, replaced_whole: bool = True) -> None:
    """Refuse an --out that cannot be written before any work is done."""
    mirage.ensure_writable(out, "--out", replaced_whole=replaced_whole)


def handle_errors(fn: F) -> F:
    """Turn bad input into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MirageInputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            if not isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)) and (
                exc.filename is None or exc.errno not in _PATH_ERRNOS
            ):
                raise  # not about a path the user gave (read-only, full, no permission): a bug, show it
            # an output path that cannot be created (under a file, in a read-only folder): the
            # user's input, whichever command met it first, so one line rather than a traceback
            if exc.filename is None:  # raised by mirage itself, message already names the path
                typer.echo(f"error: {exc}", err=True)
            elif isinstance(exc, (FileExistsError, NotADirectoryError)):
                path = Path(exc.filename)  # name the file in the way, not the directory below it
                blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
                typer.echo(f"error: {blocker}: a file stands where an output directory is needed", err=True)
            else:
                typer.echo(f"error: {exc.filename}: {(exc.strerror or str(exc)).lower()}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps fn's signature for typer


# ----------------------------------------------------------------------------- shared options
# The reading options of analyze and meta (one definition, so their help cannot drift apart).

_FILTER = typer.Option(
    [], "--filter", help="Keep rows with COL=VALUE (repeatable), applied before each file's values are checked."
)
_FAMILY = typer.Option(None, help="Family name for lm-eval results and Inspect logs (default: from the model name).")
_SCALE_FROM = typer.Option(
    None, help="Scales the files lack: 'config', 'name', a CSV (model, params, ...) or a family YAML."
)
_TOKENIZER = typer.Option(
    None,
    help="Tokens of text-only logs (lm-eval, Inspect, BIG-bench): a tokenizer directory, cached hub id or family YAML (default: characters).",
)
_METRIC_KIND = typer.Option(
    [], "--metric-kind", help="Override a metric's kind: NAME=discontinuous|nonlinear|linear (repeatable)."
)


# ----------------------------------------------------------------------------- commands
# Each command lives in its own block; add new ones below the last block.


@app.command("analyze")
@handle_errors
def analyze_cmd(
    inputs: List[Path] = typer.Argument(
        ...,
        help="Score tables (CSV/Parquet), lm-eval results JSON, record files (JSONL/Parquet) or directories of them.",
    ),
    out: Path = typer.Option(Path("mirage-out"), "--out", "-o", help="Output directory (written atomically)."),
    scale: Optional[str] = typer.Option(
        None,
        help="Column used as the x axis (params, step, train_flops, ...; default params, for BIG-bench flop-matched non-embedding parameters).",
    ),
    filter_: List[str] = _FILTER,
    family: Optional[str] = _FAMILY,
    scale_from: Optional[str] = _SCALE_FROM,
    tokenizer: Optional[str] = _TOKENIZER,
    metric_kind: List[str] = _METRIC_KIND,
    metrics: Optional[str] = typer.Option(
        None, help="Record metrics to compute, comma-separated (default: all the records support)."
    ),
    answer_regex: Optional[str] = typer.Option(
        None, help="Regex extracting the answer from outputs before exact match (group 1 if any)."
    ),
    bootstrap: int = typer.Option(1000, min=0, help="Bootstrap resamples for intervals on record metrics."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    level: float = typer.Option(0.95, min=0.5, max=0.999, help="Confidence level of intervals."),
    min_effect: float = typer.Option(
        0.1, help="Smallest rise of a discontinuous metric (0-1 scale) that can look emergent."
    ),
    test_level: float = typer.Option(0.01, help="Significance level of each verdict test (break, lag, transform)."),
    loss_tolerance: float = typer.Option(
        0.05, help="Scatter of log per-token loss around its power law still called smooth."
    ),
    curve_by: List[str] = typer.Option(
        [], "--curve-by", help="Score-table column that is part of a curve's identity (repeatable), e.g. first_operand."
    ),
    min_models: int = typer.Option(4, help="Fewest models for a verdict (>= 3)."),
    max_figures: int = typer.Option(24, min=0, help="Most task figures to draw (most informative first)."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Curves with intervals, emergence scores and verdicts -> OUT/{curves,emergence,verdicts}.csv, summary.json, figures/, report.html."""
    mirage.check_seed(seed)
    _writable(out)
    settings = mirage.AnalysisSettings(
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        min_effect=min_effect,
        test_level=test_level,
        loss_tolerance=loss_tolerance,
        curve_by=tuple(c.strip() for c in curve_by if c.strip()),
        min_models=min_models,
        metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None,
        kind_overrides=mirage.parse_kind_overrides(metric_kind),
        answer_regex=_check_regex(answer_regex),
    )
    data = mirage.read_inputs(
        [str(p) for p in inputs],
        scale=scale,
        filters=filter_,
        family=family,
        scale_from=scale_from,
        curve_by=settings.curve_by,
        tokenizer=tokenizer,
    )
    result = mirage.analyze(data, out, settings, max_figures=max_figures, progress=not quiet, static=static)
    _done(result, Path(out) / "report.html", quiet, json_)


def _done(result: Any, report: Path, quiet: bool, as_json: bool = False) -> None:
    """What every command ends with: the result's summary (unless quiet), then the report's path;
    with ``as_json`` stdout holds only the summary as JSON (the human summary goes to stderr)."""
    if as_json:
        if not quiet:
            mirage.print_summary(result, sys.stderr)
        typer.echo(mirage.summary_json(result, report=str(report)))
        return
    if not quiet:
        mirage.print_summary(result)
    typer.echo(str(report))


def _check_regex(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        raise MirageInputError(f"invalid regular expression: {exc}", "--answer-regex") from None
    return pattern


@app.command("demo")
@handle_errors
def demo_cmd(
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output directory (default mirage-demo, or mirage-demo-bundled with --bundled)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="The quick family (6 of the 8 sizes, 50 problems per digit count): about a minute."
    ),
    bundled: bool = typer.Option(
        False,
        "--bundled",
        help="Analyse the bundled real score tables (Pythia, OPT, BLOOM) instead of training a family.",
    ),
    seed: int = typer.Option(0, help="Seed of training, problem choice and bootstrap."),
    threads: int = typer.Option(1, min=1, help="torch threads (1 is fastest for these tiny models)."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The story end to end, no downloads: train a transformer family on arithmetic here, evaluate it on held-out problems, and report the paper's three predictions (or, with --bundled, analyse the real Pythia/OPT/BLOOM tables)."""
    mirage.check_seed(seed)
    _writable(out or Path("mirage-demo-bundled" if bundled else "mirage-demo"), replaced_whole=bundled)
    target = out or Path("mirage-demo-bundled" if bundled else "mirage-demo")
    # the demo prints its own paragraph and report path; with --json they go to stderr
    if bundled:
        result = mirage.run_demo(target, quiet=quiet, static=static, stream=sys.stderr if json_ else sys.stdout)
        summary: Any = result
        extra: dict[str, Any] = {}
    else:
        result, _tables, text = mirage.run_trained_demo(
            target,
            quick=quick,
            seed=seed,
            threads=threads,
            quiet=quiet,
            static=static,
            stream=sys.stderr if json_ else sys.stdout,
        )
        summary, extra = result, {"story": text}
    if json_:
        typer.echo(mirage.summary_json(summary, report=str(target / "report.html"), **extra))
    elif quiet:
        typer.echo(str(target / "report.html"))


@app.command("theory")
@handle_errors
def theory_cmd(
    c: float = typer.Option(2.0e9, "--c", help="Scale constant c of CE(N) = (N/c)^alpha (paper Fig. 2: 2.0e9)."),
    alpha: float = typer.Option(-0.5, "--alpha", help="Exponent alpha < 0 (paper Fig. 2: -0.5)."),
    lengths: str = typer.Option("1,2,3,4,5", help="Target lengths L in tokens, comma-separated."),
    n_min: float = typer.Option(1.0e7, "--n-min", help="Smallest number of parameters."),
    n_max: float = typer.Option(1.0e12, "--n-max", help="Largest number of parameters."),
    points: int = typer.Option(200, help="Scales on the log-spaced grid."),
    choices: int = typer.Option(2, help="Options K of the multiple-choice grade."),
    emergence_models: int = typer.Option(8, help="Log-spaced models at which emergence scores are taken."),
    out: Path = typer.Option(Path("mirage-theory"), "--out", "-o", help="Output directory (written atomically)."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The paper's model: smooth per-token loss, sharp accuracy -> OUT/{theory,emergence,crossings}.csv, figures/theory.png, report.html (mirage.run_theory)."""
    try:
        length_list = [int(v) for v in lengths.split(",") if v.strip()]
    except ValueError:
        raise MirageInputError(f"expected whole numbers separated by commas, got {lengths!r}", "--lengths") from None
    settings = mirage.TheorySettings(
        c=c,
        alpha=alpha,
        lengths=tuple(length_list),
        n_min=n_min,
        n_max=n_max,
        points=points,
        n_choices=choices,
        emergence_models=emergence_models,
    )
    _writable(out)
    result = mirage.run_theory(settings)
    mirage.write_theory(result, out, static=static)
    _done(result, Path(out) / "report.html", quiet, json_)


@app.command("meta")
@handle_errors
def meta_cmd(
    inputs: List[Path] = typer.Argument(
        ..., help="Everything analyze reads, plus BIG-bench results files (scores_*.json) or directory trees of them."
    ),
    out: Path = typer.Option(Path("mirage-meta"), "--out", "-o", help="Output directory (written atomically)."),
    threshold: float = typer.Option(
        2.0, help="Relative emergence score (1 = even steps) at which a curve counts as an apparent emergence."
    ),
    scale: Optional[str] = typer.Option(
        None,
        help="Column used as the x axis (params, non_embedding_params, step, ...; default params, for BIG-bench flop-matched non-embedding parameters).",
    ),
    filter_: List[str] = _FILTER,
    family: Optional[str] = _FAMILY,
    scale_from: Optional[str] = _SCALE_FROM,
    tokenizer: Optional[str] = _TOKENIZER,
    metric_kind: List[str] = _METRIC_KIND,
    top: int = typer.Option(12, min=0, help="Strongest apparent emergences to plot."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Meta-analysis (mirage.run_meta): emergence score of every curve, where apparent emergence concentrates -> OUT/meta_*.csv, figures/, report.html."""
    settings = mirage.MetaSettings(threshold=threshold, kind_overrides=mirage.parse_kind_overrides(metric_kind))
    _writable(out)
    data = mirage.read_inputs(
        [str(p) for p in inputs],
        scale=scale,
        filters=filter_,
        family=family,
        scale_from=scale_from,
        tokenizer=tokenizer,
    )
    result = mirage.run_meta(data, settings)
    figures = mirage.write_meta(result, out, top=top, progress=not quiet, static=static)
    _done(
        replace(result, summary=dict(result.summary, figures=sorted(p.name for p in figures.values()))),
        Path(out) / "report.html",
        quiet,
        json_,
    )


@app.command("forecast")
@handle_errors
def forecast_cmd(
    inputs: List[Path] = typer.Argument(
        ...,
        help="Records (or score tables with a continuous metric on a per-token loss scale), as analyze reads them.",
    ),
    to: Optional[str] = typer.Option(None, "--to", help="Scales to forecast, comma-separated (e.g. 1e10,1e11)."),
    out: Path = typer.Option(Path("mirage-forecast"), "--out", "-o", help="Output directory (replaced whole)."),
    level: float = typer.Option(0.5, help="Level of the discontinuous metric whose crossing scale is reported."),
    band: float = typer.Option(0.9, help="Coverage of the forecast band."),
    backtest: int = typer.Option(0, help="Hold out the K largest models and forecast them from the rest."),
    backtest_above: Optional[float] = typer.Option(
        None, "--backtest-above", help="Hold out every model above this scale instead."
    ),
    bootstrap: int = typer.Option(400, help="Bootstrap replicates (items and models) for the band."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    scale: Optional[str] = typer.Option(None, help="Column used as the x axis (default params)."),
    filter_: List[str] = typer.Option([], "--filter", help="Keep rows with COL=VALUE (repeatable)."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Forecast where a discontinuous metric will cross a level from the smooth per-token law of smaller models, with a band and back-tests -> OUT/{forecast,crossings,forecast_fits,backtests}.csv, figures/, report.html."""
    mirage.check_seed(seed)
    _writable(out)
    try:
        scales = tuple(float(v) for v in to.split(",") if v.strip()) if to else ()
    except ValueError:
        raise MirageInputError(f"expected scales separated by commas, got {to!r}", "--to") from None
    settings = mirage.ForecastSettings(
        to=scales,
        level=level,
        band=band,
        backtest=backtest,
        backtest_above=backtest_above,
        bootstrap=bootstrap,
        seed=seed,
    )
    data = mirage.read_inputs([str(p) for p in inputs], scale=scale, filters=filter_)
    result = mirage.run_forecast(data, settings, progress=not quiet)
    mirage.write_forecast(result, out, static=static)
    _done(result, Path(out) / "report.html", quiet, json_)


@app.command("vision")
@handle_errors
def vision_cmd(
    out: Path = typer.Option(Path("mirage-vision"), "--out", "-o", help="Output directory (written atomically)."),
    experiment: str = typer.Option("all", help="cnn, autoencoder, transformer or all."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Train every other model size of each family, exactly as the full run does (about a minute for all three).",
    ),
    seed: int = typer.Option(0, help="Seed of the data split, initialisation and batch order."),
    mnist: Optional[Path] = typer.Option(
        None, help="Directory of MNIST IDX files for the CNN (default: scikit-learn digits)."
    ),
    cifar: Optional[Path] = typer.Option(
        None, help="Directory of CIFAR-10/100 python batches for the autoencoder (default: photo patches)."
    ),
    omniglot: Optional[Path] = typer.Option(
        None, help="Omniglot PNG folders for the transformer (default: scikit-learn digits)."
    ),
    max_images: int = typer.Option(5000, min=100, help="Seeded subsample of larger on-disk datasets."),
    static: bool = typer.Option(False, "--static", help=STATIC_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train vision families and score the same predictions with continuous and discontinuous metrics (mirage.run_vision)."""
    names = mirage.parse_experiments(experiment)
    mirage.check_seed(seed)
    _writable(out)
    settings = mirage.VisionSettings(
        names,
        quick=quick,
        seed=seed,
        mnist=str(mnist) if mnist else None,
        cifar=str(cifar) if cifar else None,
        omniglot=str(omniglot) if omniglot else None,
        max_images=max_images,
    )
    result = mirage.run_vision(settings, progress=not quiet)
    _done(result, mirage.write_vision(result, out, static=static), quiet, json_)


@app.command("eval")
@handle_errors
def eval_cmd(
    family: Path = typer.Option(
        ..., "--family", help="Family YAML: family name and models (path or id, revision, params...)."
    ),
    task: str = typer.Option(
        ...,
        "--task",
        help="arithmetic:op=add,digits=2,n=1000,seed=0,shots=3 | BIG-bench task.json[:shots=,n=,seed=] | JSONL file.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Record store directory (resumable; one Parquet shard per model and task)."
    ),
    view: Optional[str] = typer.Option(None, help="generate | choice | both (default: everything the task supports)."),
    batch_size: int = typer.Option(16, min=1, help="Sequences per forward pass."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("float32", help="float32, float16, bfloat16 or auto."),
    max_new_tokens: Optional[int] = typer.Option(
        None, min=1, help="Generation limit (default: longest target + 16 tokens)."
    ),
    chunk_size: int = typer.Option(128, min=1, help="Samples per resumable chunk."),
    threads: Optional[int] = typer.Option(
        None, min=1, help="CPU threads for torch (default: torch's choice; 1 suits small models on a busy machine)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress (the per-model summary lines still print)."),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
    ray: Optional[str] = typer.Option(
        None,
        "--ray",
        metavar="[ADDRESS]",
        help="One Ray task per (model, task) shard (mirage.evaluate.ray_runner): no value (or 'local') starts a cluster here, 'auto' joins the running one, or a ray:// address. Needs the ray extra.",
    ),
    ray_retries: int = typer.Option(
        3,
        "--ray-retries",
        min=0,
        help="With --ray: times Ray reruns a shard whose worker died (it resumes from finished chunks).",
    ),
    until_pass: Optional[int] = typer.Option(
        None,
        "--until-pass",
        metavar="K",
        help="Also sample each item until its first exact match or K attempts (mirage.evaluate.until_pass) -> OUT/<family>/<model>/<task>.until-pass.parquet; analyze estimates pass rates per sample from them.",
    ),
    temperature: Optional[float] = typer.Option(None, help="With --until-pass: sampling temperature (default 1)."),
    seed: Optional[int] = typer.Option(None, help="With --until-pass: seed of the samples (default 0)."),
) -> None:
    """Run every model of a family on a task (mirage.evaluate_family) -> OUT/<family>/<model>/<task>.parquet records."""
    spec, tsk = mirage.load_family(family), mirage.load_task(task, view)  # validate both before any model loads
    sampling = _until_pass(until_pass, temperature, seed)
    _writable(out, replaced_whole=False)  # a store is written into, shard by shard
    kwargs: dict[str, Any] = dict(
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_new_tokens=max_new_tokens,
        chunk_size=chunk_size,
        progress=not quiet,
        threads=threads,
        until_pass=sampling,
    )
    if ray is not None:  # one clear line when the ray extra is missing, before anything starts
        result = mirage.evaluate_family_ray(spec, tsk, out, address=ray, max_retries=ray_retries, **kwargs)
    else:
        result = mirage.evaluate_family(spec, tsk, out, **kwargs)
    if json_:
        if not quiet:
            for line in result.summary_lines():
                typer.echo(line, err=True)
        typer.echo(mirage.summary_json(result))
        return
    for line in result.summary_lines():
        typer.echo(line)


def _until_pass(limit: int | None, temperature: float | None, seed: int | None) -> Any:
    """The sampling settings of ``eval --until-pass`` (None without it), checked."""
    if limit is None:
        for name, given in (("--temperature", temperature), ("--seed", seed)):
            if given is not None:
                raise MirageInputError("applies to --until-pass sampling only (eval alone decodes greedily)", name)
        return None
    return mirage.UntilPass(limit, 1.0 if temperature is None else temperature, 0 if seed is None else seed)


@app.command("train-family")
@handle_errors
def train_family_cmd(
    task: str = typer.Option("arithmetic", help="Training task (only 'arithmetic' so far)."),
    ops: str = typer.Option("add", help="Operations, comma-separated: add, sub, mul."),
    digits: Optional[str] = typer.Option(None, help="Digits per operand, comma-separated (1-5); default 1,2,3,4."),
    sizes: Optional[str] = typer.Option(
        None,
        help="Model sizes: LAYERSxWIDTH items (2x64) or presets tiny,xs,s,m,l,xl,xxl; default 1x4,1x8,1x12,1x16,1x24,1x32,2x32,2x48.",
    ),
    steps: Optional[int] = typer.Option(None, help="Optimizer steps per model (every size sees the same tokens)."),
    batch_size: Optional[int] = typer.Option(None, help="Problems per step (default 64)."),
    lr: float = typer.Option(
        5e-3, help="Peak learning rate at width 64 (scaled by sqrt(64/width), capped at twice this)."
    ),
    heldout: int = typer.Option(
        1000, help="Held-out problems per (op, digits) cell (at most a fifth of the cell), never trained on."
    ),
    eval_n: int = typer.Option(200, "--eval-n", help="Held-out problems per cell scored in quick_eval.csv."),
    seed: int = typer.Option(0, help="Seed of data, initialisation and held-out set."),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: all cores)."),
    family: str = typer.Option("mirage-arithmetic", help="Family name written to family.yaml."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="The test suite's family: 6 of the 8 sizes (1x4,1x8,1x16,1x24,1x32,2x48), trained the same way.",
    ),
    out: Path = typer.Option(
        Path("mirage-family"),
        "--out",
        "-o",
        help="Output directory (models are reused when already trained with the same settings).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress; print only the family.yaml path."),
    json_: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a GPT-2 family on arithmetic (mirage.train_family) -> OUT/<model>/, family.yaml, heldout.jsonl, quick_eval.csv."""
    if task != "arithmetic":
        raise MirageInputError(f"unknown task {task!r}: only 'arithmetic' can be trained", "--task")
    mirage.check_seed(seed)
    _writable(out, replaced_whole=False)  # models already trained there are reused
    cfg = mirage.make_config(
        ops=ops,
        digits=digits,
        sizes=sizes,
        steps=steps,
        seed=seed,
        quick=quick,
        batch_size=batch_size,
        lr=lr,
        heldout_per_cell=heldout,
        eval_per_cell=eval_n,
        family=family,
    )
    result = mirage.train_family(cfg, out, threads=threads, progress=not quiet)
    if not quiet:
        for m in result.models:
            typer.echo(
                f"{m.name:>6}: {m.params:>9,} params, final loss {m.final_loss:.3f}, "
                f"{'reused' if m.cached else f'{m.seconds:.1f} s'}",
                err=json_,
            )
        s = result.summary
        if s:
            em, lp = s["exact_match"], s["token_logprob"]
            typer.echo(
                f"held-out exact match {em['values']} (jump share {em['jump_share']:.2f}); "
                f"per-token log-prob {lp['values']} (jump share {lp['jump_share']:.2f}); "
                f"{len(result.models)} models in {result.seconds:.1f} s",
                err=json_,
            )
    typer.echo(mirage.summary_json(result) if json_ else str(result.family_yaml))


# ----------------------------------------------------------------------------- end of commands


OPTIONAL_VALUE = {"--ray": "local"}  # options whose value may be left out (typer has no such options)


def with_optional_values(argv: List[str]) -> List[str]:
    """``--ray`` with no value (last, or followed by another option) becomes ``--ray local``."""
    out: List[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg in OPTIONAL_VALUE and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUE[arg])
    return out


def main() -> None:
    """The console-script entry point (``mirage``)."""
    app(args=with_optional_values(sys.argv[1:]), prog_name="mirage")


if __name__ == "__main__":
    main()
