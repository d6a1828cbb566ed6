"""``mirage vision``: load data, train the chosen families, write tables, figures and a report.

All data are loaded and validated before any model is trained, and the whole output directory
is written atomically (``mirage.fsio.atomic_dir``), so a failed or interrupted run leaves no
half-written results.

Output directory:
    scores.csv            long score table (core format, ``metric_kind`` and ``higher_is_better``
                          columns), read by ``mirage analyze OUT/scores.csv``
    emergence.csv         emergence score of every (family, task, metric) curve
    _predictions.parquet  per-test-image predictions every score was computed from
    summary.json          settings, timings and the headline comparisons
    figures/*.png         continuous and discontinuous metrics side by side, per experiment
    report.html           self-contained report stating both emergence scores per experiment
"""
from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MirageInputError
from ..fsio import atomic_dir, write_csv, write_json, write_parquet, write_text
from .datasets import ImageSet, load_cifar, load_mnist, load_natural_patches, load_omniglot, load_sklearn_digits
from .experiments import EXPERIMENTS, Comparison, ExperimentResult, compare_headline, emergence_table, run_experiment

EXPERIMENT_NAMES = tuple(EXPERIMENTS)
# Fewest images an experiment trains on: 40 % are held out, and subset accuracy needs up to
# K = 30 test images (with fewer, a run would train on almost nothing and still write a report).
MIN_IMAGES = 100


@dataclass(frozen=True)
class DataSources:
    """Optional on-disk datasets replacing the built-in ones (None: use scikit-learn's)."""

    mnist: str | None = None      # cnn
    cifar: str | None = None      # autoencoder
    omniglot: str | None = None   # transformer
    max_images: int = 5000        # seeded subsample of large on-disk sets, to keep CPU time bounded


@dataclass(frozen=True)
class VisionRun:
    results: tuple[ExperimentResult, ...]
    scores: pd.DataFrame
    emergence: pd.DataFrame
    comparisons: tuple[Comparison, ...]
    seconds: dict


def parse_experiments(name: str) -> tuple[str, ...]:
    if name == "all":
        return EXPERIMENT_NAMES
    if name not in EXPERIMENTS:
        raise MirageInputError(f"unknown experiment {name!r} (choose {', '.join(EXPERIMENT_NAMES)} or all)",
                               "--experiment")
    return (name,)


def load_data(experiment: str, sources: DataSources, seed: int) -> ImageSet:
    """The dataset an experiment trains on: the user's on-disk set if given, else built-in."""
    on_disk = {"cnn": sources.mnist, "autoencoder": sources.cifar, "transformer": sources.omniglot}[experiment]
    if not on_disk:
        return load_sklearn_digits() if experiment != "autoencoder" else load_natural_patches()
    if experiment == "cnn":
        data = load_mnist(on_disk)
    elif experiment == "autoencoder":
        data = load_cifar(on_disk)
    else:
        data = load_omniglot(on_disk, max_classes=20)
    if len(data.images) < MIN_IMAGES:
        raise MirageInputError(f"holds {len(data.images)} image{'s' if len(data.images) != 1 else ''}; the {experiment} "
                               f"experiment needs at least {MIN_IMAGES} (40 % are held out for testing)", on_disk)
    if len(data.images) > sources.max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(data.images), sources.max_images, replace=False))
        data = data.subset(keep)
    return data


def run_vision(experiments: tuple[str, ...], *, quick: bool = False, seed: int = 0,
               sources: DataSources = DataSources(), progress: bool = True) -> VisionRun:
    """Train and score every experiment in ``experiments`` (Python API of ``mirage vision``)."""
    datasets = {name: load_data(name, sources, seed) for name in experiments}  # validate first
    results, seconds = [], {}
    for name in experiments:
        start = time.perf_counter()
        try:
            results.append(run_experiment(EXPERIMENTS[name], datasets[name], quick=quick, seed=seed,
                                          progress=progress))
        except ValueError as exc:  # data that does not fit the model family
            raise MirageInputError(str(exc), datasets[name].name) from None
        seconds[name] = round(time.perf_counter() - start, 2)
    scores = pd.concat([r.scores for r in results], ignore_index=True)
    emergence = emergence_table(scores)
    comparisons = tuple(c for r in results for c in compare_headline(r.spec, emergence))
    return VisionRun(tuple(results), scores, emergence, comparisons, seconds)


def write_vision(run: VisionRun, out: str | Path, *, quick: bool, seed: int) -> Path:
    """Write every output of ``run`` into ``out`` atomically; return the report path."""
    figures = {r.spec.name: _figure(r, run.emergence) for r in run.results}
    summary = dict(
        quick=quick, seed=seed, seconds=run.seconds,
        experiments=[dict(name=r.spec.name, family=r.spec.family, task=r.task, epochs=r.epochs,
                          n_models=len(r.spec.sizes), headline=r.spec.headline,
                          subset_k=list(r.spec.ks), reconstruction_c=list(r.spec.cs)) for r in run.results],
        comparisons=[dict(asdict(c), discontinuous_exceeds=c.discontinuous_exceeds) for c in run.comparisons],
    )
    with atomic_dir(out) as tmp:
        write_csv(tmp / "scores.csv", run.scores)
        write_csv(tmp / "emergence.csv", run.emergence)
        write_parquet(tmp / "_predictions.parquet", pd.concat([r.predictions for r in run.results], ignore_index=True))
        write_json(tmp / "summary.json", summary)
        (tmp / "figures").mkdir()
        for name, fig in figures.items():
            fig.savefig(tmp / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
        write_text(tmp / "report.html", _report_html(run, figures, quick))
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)
    return Path(out) / "report.html"


# ----------------------------------------------------------------------------- figures, report


def _figure(result: ExperimentResult, emergence: pd.DataFrame):
    """Continuous metrics (one panel each) beside all discontinuous ones, against parameters."""
    from ..report import pyplot

    plt = pyplot()
    scores = result.scores
    continuous = [m for m in scores["metric"].unique() if (scores.loc[scores.metric == m, "metric_kind"] == "linear").all()]
    discontinuous = [m for m in scores["metric"].unique() if m not in continuous]
    score_of = emergence[emergence.family == result.spec.family].set_index("metric")["oriented_score"]
    fig, axes = plt.subplots(1, len(continuous) + 1, figsize=(4.2 * (len(continuous) + 1), 3.6))
    for ax, metric in zip(axes, continuous):
        g = scores[scores.metric == metric].sort_values("params")
        ax.errorbar(g.params, g.value, yerr=1.96 * g.stderr, marker="o", color="#1f5fa8", capsize=2)
        lower = not bool(g["higher_is_better"].iloc[0])
        ax.set_title(f"{metric} (continuous)\nemergence score{' of -' + metric if lower else ''} "
                     f"{score_of[metric]:.3g}", fontsize=9)
        ax.set_ylabel(metric)
    ax = axes[-1]
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(discontinuous)))
    for colour, metric in zip(colours, discontinuous):
        g = scores[scores.metric == metric].sort_values("params")
        ax.errorbar(g.params, g.value, yerr=1.96 * g.stderr, marker="o", color=colour, capsize=2,
                    label=f"{metric.split('_')[-1]}: {score_of[metric]:.3g}")
    ax.set_title(f"{'subset accuracy (K)' if result.spec.ks else 'reconstruction below c'} (discontinuous)\n"
                 "legend: emergence score", fontsize=9)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7, loc="upper left")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.spec.family} on {result.task}: same predictions, different metrics", fontsize=10)
    fig.tight_layout()
    return fig


def _report_html(run: VisionRun, figures: dict, quick: bool) -> str:
    from ..report import figure_to_data_uri, html_document, table_html

    parts = [
        "<p>Each family was trained here and every model scored once on held-out images; the continuous "
        "and discontinuous metrics below are computed from the <em>same</em> per-image predictions. "
        "Emergence scores are oriented so that higher means a sharper rise with scale (the score of "
        "&minus;MSE and &minus;cross-entropy). The discontinuous metric compared is fixed in advance per "
        "experiment (largest K, smallest c).</p>",
        f"<p class=\"muted\">{'quick run (short training)' if quick else 'full run'}; "
        f"seconds per experiment: {html.escape(str(run.seconds))}</p>",
    ]
    for result in run.results:
        spec = result.spec
        comps = [c for c in run.comparisons if c.family == spec.family]
        parts.append(f"<h2>{html.escape(spec.family)} on {html.escape(result.task)}</h2>")
        for c in comps:
            verdict = "exceeds" if c.discontinuous_exceeds else "does not exceed"
            parts.append(
                f"<p class=\"box\">Emergence score of <b>{html.escape(c.discontinuous_metric)}</b> (discontinuous): "
                f"<b>{c.discontinuous_score:.3g}</b>; of <b>{html.escape(c.continuous_metric)}</b> (continuous): "
                f"<b>{c.continuous_score:.3g}</b>. The discontinuous score <b>{verdict}</b> the continuous one "
                "on the same predictions.</p>")
        table = result.scores.pivot_table(index=["model", "params"], columns="metric", values="value", sort=False)
        parts.append(table_html(table.reset_index().sort_values("params")))
        em = run.emergence[run.emergence.family == spec.family]
        parts.append(table_html(em[["metric", "metric_kind", "n_models", "emergence_score", "oriented_score",
                                    "flat_then_jump"]]))
        parts.append(f"<figure><img alt=\"{html.escape(spec.family)}\" src=\"{figure_to_data_uri(figures[spec.name])}\">"
                     "<figcaption>Left: continuous metrics; right: the discontinuous metric at several K or c. "
                     "Error bars: 95% normal intervals.</figcaption></figure>")
    return html_document("mirage vision: inducing emergence with the choice of metric", "\n".join(parts))
