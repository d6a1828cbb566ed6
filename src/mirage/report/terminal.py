"""What the commands print: a few lines on the terminal from a result (rich markup escaped, so
metric names such as ``exact_match[first-number]`` print as they are)."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import IO, Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..schema.results import AnalysisResult, ForecastResult, MetaResult, TheoryResult, VisionResult
from ..schema.vocab import VERDICT_ORDER, CrossingKind, Verdict

SHOWN_VERDICTS = 15  # verdict rows printed; every row is in verdicts.csv


def print_analysis(result: AnalysisResult, stream: IO[str] | None = None) -> None:
    """Counts, notes, unknown metrics and the verdicts (on ``stream``, default stdout): decided
    ones first, then "no apparent emergence", the order of ``verdicts.csv``; "insufficient
    evidence" rows are counted, not listed."""
    console = Console(file=stream or sys.stdout, highlight=False)
    s = result.summary
    console.print(
        f"[bold]{s['n_curves']}[/] curves from {s['n_families']} families, {s['n_models']} models, {s['n_tasks']} tasks"
    )
    # notes and metric names are data ('exact_match[first-number]'), not rich markup
    for note in s.get("notes", []):
        console.print(f"[yellow]{escape(note)}[/]")
    if s["unknown_metrics"]:
        console.print(
            f"[yellow]metrics of unknown kind (use --metric-kind NAME=KIND):[/] "
            f"{escape(', '.join(s['unknown_metrics']))}"
        )
    v = result.verdicts
    if len(v):
        order = {name.value: i for i, name in enumerate(VERDICT_ORDER)}
        ranked = v.assign(_r=v["verdict"].map(order).fillna(len(order))).sort_values("_r", kind="stable")
        listed = ranked[ranked["verdict"] != Verdict.INSUFFICIENT.value]
        insufficient = int((v["verdict"] == Verdict.INSUFFICIENT.value).sum())
        if len(listed):
            table = Table(title="verdicts (decided ones first, as in verdicts.csv)")
            for col in ("family", "task", "shots", "metric pair", "verdict"):
                table.add_column(col)
            for row in listed.head(SHOWN_VERDICTS).itertuples(index=False):
                table.add_row(
                    escape(str(row.family)),
                    escape(str(row.task)),
                    "" if row.shots is None or str(row.shots) == "<NA>" else str(row.shots),
                    escape(f"{row.discontinuous_metric} / {row.continuous_metric}"),
                    str(row.verdict),
                )
            console.print(table)
            if len(listed) > SHOWN_VERDICTS:
                console.print(f"... {len(listed) - SHOWN_VERDICTS} more decided or no-emergence rows in verdicts.csv")
        if insufficient:
            console.print(f"{insufficient} {Verdict.INSUFFICIENT.value} (not listed; last in verdicts.csv)")
        console.print("counts: " + ", ".join(f"{k}: {n}" for k, n in s["verdict_counts"].items() if n))


def meta_lines(result: MetaResult) -> list[str]:
    """The notes, the counts of apparent emergences by kind and what re-scoring left."""
    s = result.summary
    lines = list(s.get("notes", []))
    lines.append(
        f"{s['n_curves']} curves ({s['n_scored']} scored), {s['n_apparent']} apparent emergences at threshold "
        f"{s['threshold']:g}: " + (", ".join(f"{k} {v}" for k, v in s["apparent_by_kind"].items()) or "none")
    )
    if s["rescored"]:
        lines.append(
            f"re-scored from records with a continuous metric: {s['remaining_after_rescore']} of {s['rescored']} remain"
        )
    return lines


def theory_lines(result: TheoryResult) -> list[str]:
    """Where accuracy reaches 50 %, per target length."""
    return [
        f"L={row.length}: accuracy reaches 50% at N = {row[1]:.3g}" for row in result.crossings.itertuples(index=False)
    ]


def vision_lines(result: VisionResult) -> list[str]:
    """Each headline comparison: the discontinuous metric's emergence score against a continuous one's."""
    return [
        f"{c.family}: {c.discontinuous_metric} {c.discontinuous_score:.3g} vs {c.continuous_metric} "
        f"{c.continuous_score:.3g} -> discontinuous {'exceeds' if c.discontinuous_exceeds else 'does not exceed'}"
        for c in result.comparisons
    ]


def bundled_demo_paragraph(result: AnalysisResult, elapsed: float) -> str:
    """The bundled demo's summary: counts, verdicts, and Pythia's LAMBADA accuracy against perplexity."""
    s = result.summary
    c = result.curves
    lam = c[(c["task"] == "lambada_openai") & (c["family"] == "Pythia") & (c["shots"] == 0)]
    acc = lam[lam["metric"] == "acc"].sort_values("scale")["value"]
    ppl = lam[lam["metric"] == "ppl"].sort_values("scale")["value"]
    counts = ", ".join(f"{n} {k}" for k, n in s["verdict_counts"].items() if n)
    text = (
        f"Analysed {s['n_curves']} curves ({s['n_families']} families, {s['n_models']} models, "
        f"{s['n_tasks']} tasks) in {elapsed:.1f} s. Verdicts where a discontinuous and a continuous "
        f"metric meet: {counts or 'none'}."
    )
    if len(acc) and len(ppl):
        text += (
            f" Pythia LAMBADA accuracy rises {acc.iloc[0]:.3f} -> {acc.iloc[-1]:.3f} while perplexity "
            f"falls {ppl.iloc[0]:.1f} -> {ppl.iloc[-1]:.2f}"
        )
        v = result.verdicts
        row = v[
            (v["family"] == "Pythia")
            & (v["task"] == "lambada_openai")
            & (v["shots"] == 0)
            & (v["discontinuous_metric"] == "acc")
        ]
        text += f"; verdict: {row['verdict'].iloc[0]}." if len(row) else "."
    return text


def forecast_lines(result: ForecastResult) -> list[str]:
    """Per forecast, where the metric reaches the level (or why not); then the back-test."""
    out = []
    for row in result.crossings[result.crossings["crossing"] == CrossingKind.LEVEL.value].itertuples(index=False):
        shots = "" if pd.isna(row.shots) else f" ({row.shots}-shot)"
        where = (
            f"{row.scale:.3g} (band {row.scale_low:.3g} to {row.scale_high:.3g})"
            if pd.notna(row.scale)
            else str(row.note)
        )
        out.append(f"{row.family} / {row.task}{shots}: {row.metric} reaches {row.level:g} at {where}")
    s = result.summary
    if s["backtest_points"]:
        out.append(f"back-test: the band covers {s['backtest_covered']} of {s['backtest_points']} held-out points")
    return out


def theory_summary(result: TheoryResult) -> dict[str, Any]:
    """What ``mirage theory --json`` prints: the law's settings and where accuracy crosses 50 % and 10 %."""
    return dict(
        settings=asdict(result.settings),
        crossings=result.crossings.to_dict("records"),
        n_points=int(len(result.table)),
    )


def vision_summary(result: VisionResult) -> dict[str, Any]:
    """What ``summary.json`` of ``mirage vision`` holds: settings, timings, experiments, comparisons."""
    return dict(
        quick=result.settings.quick,
        seed=result.settings.seed,
        seconds=result.seconds,
        experiments=[
            dict(
                name=e.name,
                family=e.family,
                task=e.task,
                epochs=e.epochs,
                n_models=e.n_models,
                headline=e.headline,
                subset_k=list(e.subset_k),
                reconstruction_c=list(e.reconstruction_c),
            )
            for e in result.experiments
        ],
        comparisons=[dict(asdict(c), discontinuous_exceeds=c.discontinuous_exceeds) for c in result.comparisons],
    )


def print_summary(
    result: AnalysisResult | MetaResult | TheoryResult | VisionResult | ForecastResult,
    stream: IO[str] | None = None,
) -> None:
    """What a command prints about its result before the report's path (on ``stream``, default stdout)."""
    if isinstance(result, AnalysisResult):
        print_analysis(result, stream)
        return
    lines = (
        meta_lines(result)
        if isinstance(result, MetaResult)
        else theory_lines(result)
        if isinstance(result, TheoryResult)
        else forecast_lines(result)
        if isinstance(result, ForecastResult)
        else vision_lines(result)
    )
    for line in lines:
        print(line, file=stream or sys.stdout)


class UnitProgress:
    """Progress of a streamed analysis on stderr, one (family, task) unit at a time: a line
    rewritten in place on a terminal, a plain line every few seconds when stderr is a file."""

    def __init__(self, enabled: bool = True, every: float = 5.0) -> None:
        self.enabled = enabled
        self.every = every
        self.units = 0
        self.records = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = sys.stderr.isatty()
        self._closed = False

    def __call__(self, family: str, task: str, n_records: int) -> None:
        """Count one finished unit."""
        self.units += 1
        self.records += n_records
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty or now - self._last >= self.every:
            self._last = now
            line = (
                f"records: {self.units:,} family/task units, {self.records:,} records "
                f"({now - self.start:.0f} s; last {family} / {task})"
            )
            print(
                ("\r" + line[:160] + "\033[K") if self._tty else line,
                end="" if self._tty else "\n",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """End the progress line (once; closing again does nothing)."""
        if self.enabled and self._tty and self.units and not self._closed:
            print(file=sys.stderr, flush=True)
        self._closed = True
