"""``mirage demo``: the whole story, with no downloads.

By default (:func:`run_trained_demo`) mirage trains its own transformer family on arithmetic,
evaluates it on held-out problems and writes a report on the paper's three predictions.
``mirage demo --bundled`` (:func:`run_demo`) instead analyses the published lm-evaluation-harness
results of Pythia (8 sizes, standard and deduplicated, 0- and 5-shot), OPT and BLOOM that ship
inside the package (``mirage/data``, Apache-2.0, from the EleutherAI/pythia repository).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .analysis.analyze import run_analysis
from .analysis.forecast import run_forecast
from .analysis.story import story_tables
from .api import analyze
from .evaluate.run import ShardResult, evaluate_family
from .io.bundled import BUNDLED_TABLES, bundled_path
from .io.family import load_family
from .io.files import write_text
from .io.inputs import read_inputs
from .io.outputs import write_analysis, write_forecast, write_story
from .io.records import read_records, write_records
from .io.tasks import load_task
from .report.story import story_summary
from .report.terminal import bundled_demo_paragraph
from .schema.results import AnalysisResult, StoryTables
from .schema.settings import AnalysisSettings, ForecastSettings
from .train.arithmetic import first_per_cell, make_config, train_family

__all__ = ["BUNDLED_TABLES", "bundled_path", "demo_task_files", "long_subset", "run_demo", "run_trained_demo"]


def run_demo(
    out: str | Path = "mirage-demo", quiet: bool = False, *, static: bool = False, stream: IO[str] | None = None
) -> AnalysisResult:
    """``mirage demo --bundled``: analyse the bundled Pythia/OPT/BLOOM tables into ``out``; unless
    ``quiet``, print a paragraph and the report's path on ``stream`` (default stdout)."""
    start = time.perf_counter()
    inputs = read_inputs([bundled_path(n) for n in BUNDLED_TABLES])
    result = analyze(
        inputs,
        out,
        AnalysisSettings(),
        title="mirage demo: Pythia, OPT and BLOOM",
        progress=not quiet,
        featured_tasks=("lambada_openai",),
        static=static,
    )
    elapsed = time.perf_counter() - start
    if not quiet:
        print(bundled_demo_paragraph(result, elapsed), file=stream or sys.stdout)
        print(Path(out) / "report.html", file=stream or sys.stdout)
    return result


STANDARD_PER_CELL = {False: 100, True: 50}  # held-out problems per digit count, full / quick
LARGE_FACTOR = 10  # Prediction 2: the small models answer ten times as many long problems
MAIN_TASK, LONG_TASK, LARGE_TASK = "arithmetic", "arithmetic_long", "arithmetic_long_10x"


def _sample_id(row: dict) -> str:
    return f"{row['op']}:{row['a']}:{row['b']}"


def demo_task_files(
    heldout: Path, out_dir: Path, per_cell: int, factor: int = LARGE_FACTOR, n_long: int = 2
) -> tuple[Path, Path, set]:
    """Write the demo's held-out tasks and say which problems are long.

    ``arithmetic.jsonl``: the first ``per_cell`` problems of every op x digits cell (targets of
    every length: Prediction 3; the long ones among them are Prediction 1's task).
    ``arithmetic_long_10x.jsonl``: the first ``factor x per_cell`` problems of the ``n_long``
    largest digit counts (Prediction 2). Sample ids are the problems themselves (``op:a:b``), so
    a problem has the same id everywhere. Returns both paths and the sample ids of the long
    problems of ``arithmetic.jsonl``."""
    rows = [json.loads(line) for line in heldout.read_text().splitlines() if line.strip()]
    long_digits = set(sorted({r["digits"] for r in rows})[-n_long:])

    def write(name: str, chosen: list[dict[str, Any]]) -> Path:
        path = out_dir / f"{name}.jsonl"
        write_text(
            path,
            "".join(
                json.dumps(
                    {"sample_id": _sample_id(r), "prompt": r["prompt"], "target": r["target"], "digits": r["digits"]}
                )
                + "\n"
                for r in chosen
            ),
        )
        return path

    def cell(row: dict[str, Any]) -> tuple[str, int]:
        return row["op"], row["digits"]

    main = first_per_cell(rows, per_cell, cell)
    main_path = write(MAIN_TASK, main)
    large_path = write(
        LARGE_TASK, first_per_cell([r for r in rows if r["digits"] in long_digits], per_cell * factor, cell)
    )
    long_ids = {_sample_id(r) for r in main if r["digits"] in long_digits}
    return main_path, large_path, long_ids


def long_subset(shards: Sequence[ShardResult], sample_ids: set[str], task: str, path: Path) -> Path:
    """The records of ``shards`` whose sample is in ``sample_ids``, renamed to ``task``: the same
    model outputs, restricted to the long problems (nothing is evaluated twice)."""
    table = pa.concat_tables([read_records(s.path) for s in shards])
    table = table.filter(pc.is_in(table["sample_id"], value_set=pa.array(sorted(sample_ids))))
    table = table.set_column(table.schema.get_field_index("task"), "task", pa.array([task] * len(table)))
    write_records(table, path)
    return path


def run_trained_demo(
    out: str | Path = "mirage-demo",
    *,
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
    quiet: bool = False,
    batch_size: int = 128,
    static: bool = False,
    stream: IO[str] | None = None,
) -> tuple[AnalysisResult, StoryTables, str]:
    """The whole story on a family trained here: train (or reuse) -> eval -> analyze -> report.

    Trains the arithmetic family (:mod:`mirage.train.arithmetic`, cached under ``OUT/family``),
    evaluates every model with ``mirage eval`` on held-out problems it never saw (resumable store
    under ``OUT/store``), and the smaller half of the family again on ten times as many problems;
    analyses the records (``OUT/analysis``) and writes ``OUT/report.html`` with the paper's three
    predictions (:mod:`mirage.analysis.story`, :mod:`mirage.report.story`). Reports what it measures: if exact match is not sharp for
    this family the report and the summary say so. Both reports are interactive unless ``static``.
    Unless ``quiet``, prints the summary and the report's path on ``stream`` (default stdout);
    progress goes to stderr. Returns the analysis, the story's tables and the summary.
    """
    start = time.perf_counter()
    out = Path(out)
    fam = train_family(make_config(quick=quick, seed=seed), out / "family", threads=threads, progress=not quiet)
    standard, large, long_ids = demo_task_files(fam.heldout_path, out / "family", STANDARD_PER_CELL[quick])
    spec = load_family(fam.family_yaml)
    main = evaluate_family(
        spec, load_task(str(standard)), out / "store", threads=threads, progress=not quiet, batch_size=batch_size
    )
    small = replace(spec, models=spec.models[: (len(spec.models) + 1) // 2])
    evaluate_family(
        small, load_task(str(large)), out / "store", threads=threads, progress=not quiet, batch_size=batch_size
    )
    derived = long_subset(main.shards, long_ids, LONG_TASK, out / "derived" / f"{LONG_TASK}.parquet")
    result = write_analysis(
        run_analysis(read_inputs([out / "store", derived]), AnalysisSettings(seed=seed)),
        out / "analysis",
        title="mirage demo: a transformer family trained here on arithmetic (all analyses)",
        progress=not quiet,
        static=static,
    )
    # Prediction 4: the larger half forecast from the smaller half of the family (a back-test)
    forecast = run_forecast(
        read_inputs([derived]),
        ForecastSettings(backtest=len(fam.models) // 2, bootstrap=200, seed=seed),
        progress=not quiet,
    )
    write_forecast(
        forecast, out / "forecast", title="mirage demo: the larger half forecast from the smaller half", static=static
    )
    family_table = pd.DataFrame(
        [
            {"model": m.name, "params": m.params, "train_tokens": m.train_tokens, "final_loss": round(m.final_loss, 4)}
            for m in fam.models
        ]
    )
    elapsed = time.perf_counter() - start
    intro = (
        f"<p>{len(fam.models)} GPT-2-architecture models ({fam.models[0].params:,} to "
        f"{fam.models[-1].params:,} parameters), trained here on the same {fam.models[0].train_tokens:,} tokens "
        f"of addition problems (seed {seed}{', quick family' if quick else ''}), then evaluated by "
        f"<code>mirage eval</code> on held-out problems none of them saw. Train, evaluate and analyse took "
        f"{elapsed:.0f} s.</p>"
    )
    tables = story_tables(result, LONG_TASK, LARGE_TASK, length_task=MAIN_TASK, forecast=forecast)
    write_story(
        tables,
        out / "report.html",
        family_table=family_table,
        intro_html=intro,
        title="mirage demo: is the jump in exact match real, or made by the metric?",
        analysis_link="analysis/report.html",
        static=static,
    )
    text = f"Trained, evaluated and analysed {len(fam.models)} models in {elapsed:.0f} s. " + story_summary(tables)
    if not quiet:
        print(text, file=stream or sys.stdout)
        print(out / "report.html", file=stream or sys.stdout)
    return result, tables, text
