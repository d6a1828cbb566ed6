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


def run_trained_demo(out: str | Path = "mirage-demo-trained", *, quick: bool = False, seed: int = 0,
                     n_problems: int | None = None, threads: int = 1, quiet: bool = False):
    """The whole story on a family trained here: train (or reuse) -> eval -> analyze.

    Trains the arithmetic family (:mod:`mirage.training`, cached under ``OUT/family``),
    evaluates every model on held-out problems it never saw (``mirage eval``, resumable store
    under ``OUT/store``) and analyses the records (``OUT/analysis``). Reports what it measures:
    the verdict may well be "no sharp transition" for a family that does not show the effect.
    """
    from .analysis import AnalysisSettings, analyze
    from .evaluation import evaluate_family
    from .readers import read_inputs
    from .tasks import load_task
    from .training import make_config, train_family

    start = time.perf_counter()
    out = Path(out)
    fam = train_family(make_config(quick=quick, seed=seed), out / "family", threads=threads, progress=not quiet)
    n = n_problems or (300 if quick else 1000)
    task = load_task(f"{fam.heldout_path}:n={n},seed={seed}")
    evaluate_family(fam.family_yaml, task, out / "store", threads=threads, progress=not quiet)
    result = analyze(read_inputs([out / "store"]), out / "analysis", AnalysisSettings(seed=seed),
                     title="mirage demo: a transformer family trained here on arithmetic", progress=not quiet)
    elapsed = time.perf_counter() - start
    text = trained_summary_paragraph(result, elapsed)
    if not quiet:
        print(text)
        print(out / "analysis" / "report.html")
    return result, text


def trained_summary_paragraph(result, elapsed: float) -> str:
    """What the trained-family demo measured, in one paragraph (numbers, not conclusions)."""
    v = result.verdicts
    row = v[v["discontinuous_metric"] == "exact_match"]
    c = result.curves
    em = c[c["metric"] == "exact_match"].sort_values("scale")["value"]
    lp = c[c["metric"] == "target_mean_logprob"].sort_values("scale")["value"]
    text = (f"Trained, evaluated and analysed {len(em)} models in {elapsed:.0f} s. "
            f"Exact match {em.iloc[0]:.3f} -> {em.iloc[-1]:.3f}; mean per-token log-probability "
            f"{lp.iloc[0]:.2f} -> {lp.iloc[-1]:.2f}.")
    if len(row):
        r = row.iloc[0]
        text += f" Verdict: {r['verdict']} ({r['reason']})."
    res = result.resolution
    if res is not None and len(res):
        em_res = res[res["metric"] == "exact_match"]
        text += (f" {int(em_res['above_chance'].sum())} of {len(em_res)} models are above zero by their Wilson "
                 f"interval.")
    return text
