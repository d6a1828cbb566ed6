"""``mirage demo``: the analysis on real, bundled scaling results, with no downloads.

Until mirage trains its own family, the demo analyses the published lm-evaluation-harness
results of Pythia (8 sizes, standard and deduplicated, 0- and 5-shot), OPT and BLOOM that ship
inside the package (``mirage/data``, Apache-2.0, from the EleutherAI/pythia repository).
"""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

BUNDLED_TABLES = ("pythia_scaling.csv", "opt_bloom_scaling.csv")


def bundled_path(name: str) -> Path:
    """Path of a data file shipped inside the package."""
    return Path(str(resources.files("mirage") / "data" / name))


def run_demo(out: str | Path = "mirage-demo", quiet: bool = False):
    from .analysis import AnalysisSettings, analyze
    from .readers import read_inputs

    start = time.perf_counter()
    inputs = read_inputs([bundled_path(n) for n in BUNDLED_TABLES])
    result = analyze(inputs, out, AnalysisSettings(), title="mirage demo: Pythia, OPT and BLOOM", progress=not quiet,
                     featured_tasks=("lambada_openai",))
    elapsed = time.perf_counter() - start
    if not quiet:
        print(summary_paragraph(result, elapsed))
        print(Path(out) / "report.html")
    return result


def summary_paragraph(result, elapsed: float) -> str:
    s = result.summary
    c = result.curves
    lam = c[(c["task"] == "lambada_openai") & (c["family"] == "Pythia") & (c["shots"] == 0)]
    acc = lam[lam["metric"] == "acc"].sort_values("scale")["value"]
    ppl = lam[lam["metric"] == "ppl"].sort_values("scale")["value"]
    counts = ", ".join(f"{n} {k}" for k, n in s["verdict_counts"].items() if n)
    text = (f"Analysed {s['n_curves']} curves ({s['n_families']} families, {s['n_models']} models, "
            f"{s['n_tasks']} tasks) in {elapsed:.1f} s. Verdicts where a discontinuous and a continuous "
            f"metric meet: {counts or 'none'}.")
    if len(acc) and len(ppl):
        text += (f" Pythia LAMBADA accuracy rises {acc.iloc[0]:.3f} -> {acc.iloc[-1]:.3f} while perplexity "
                 f"falls {ppl.iloc[0]:.1f} -> {ppl.iloc[-1]:.2f}, both smoothly.")
    return text
