"""``mirage vision``: load the data and train the chosen families (:func:`run_vision`).

All data are loaded and validated before any model is trained. The result
(:class:`~mirage.schema.results.VisionResult`) is written by
:func:`mirage.io.outputs.write_vision`, atomically:

    scores.csv            long score table (core format, ``metric_kind`` and ``higher_is_better``
                          columns), read by ``mirage analyze OUT/scores.csv``
    emergence.csv         emergence score of every (family, task, metric) curve
    _predictions.parquet  per-test-image predictions every score was computed from
    summary.json          settings, timings and the headline comparisons
    figures/*.png         continuous and discontinuous metrics side by side, per experiment
    report.html           self-contained report stating both emergence scores per experiment
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..errors import MirageInputError
from ..schema.results import VisionExperimentResult, VisionResult
from ..schema.settings import MIN_IMAGES, VisionExperiment, VisionSettings
from .datasets import ImageSet, load_cifar, load_mnist, load_natural_patches, load_omniglot, load_sklearn_digits
from .experiments import EXPERIMENTS, compare_headline, run_experiment, vision_emergence_table

EXPERIMENT_NAMES = tuple(EXPERIMENTS)
assert EXPERIMENT_NAMES == VisionExperiment.values()  # the settings' vocabulary is this registry
__all__ = ["EXPERIMENT_NAMES", "MIN_IMAGES", "load_data", "run_vision"]


def load_data(experiment: str, settings: VisionSettings, seed: int | None = None) -> ImageSet:
    """The dataset an experiment trains on: the user's on-disk set if given (subsampled, seeded, to
    ``settings.max_images``), else the built-in one."""
    seed = settings.seed if seed is None else seed
    on_disk = settings.on_disk(experiment)
    if not on_disk:
        return load_sklearn_digits() if experiment != "autoencoder" else load_natural_patches()
    if experiment == "cnn":
        data = load_mnist(on_disk)
    elif experiment == "autoencoder":
        data = load_cifar(on_disk)
    else:
        data = load_omniglot(on_disk, max_classes=20)
    if len(data.images) < MIN_IMAGES:
        raise MirageInputError(
            f"holds {len(data.images)} image{'s' if len(data.images) != 1 else ''}; the {experiment} "
            f"experiment needs at least {MIN_IMAGES} (40 % are held out for testing)",
            on_disk,
        )
    if len(data.images) > settings.max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(data.images), settings.max_images, replace=False))
        data = data.subset(keep)
    return data


def run_vision(settings: VisionSettings = VisionSettings(), *, progress: bool = True) -> VisionResult:
    """Train and score every experiment of ``settings`` (the Python API of ``mirage vision``)."""
    datasets = {name: load_data(name, settings) for name in settings.experiments}  # validate first
    experiments, seconds = [], {}
    for name in settings.experiments:
        spec = EXPERIMENTS[name]
        start = time.perf_counter()
        try:
            r = run_experiment(spec, datasets[name], quick=settings.quick, seed=settings.seed, progress=progress)
        except ValueError as exc:  # data that does not fit the model family
            raise MirageInputError(str(exc), datasets[name].name) from None
        seconds[name] = round(time.perf_counter() - start, 2)
        experiments.append(
            VisionExperimentResult(
                name=spec.name,
                family=spec.family,
                task=r.task,
                epochs=r.epochs,
                n_models=len(spec.sizes),
                headline=spec.headline,
                subset_k=tuple(spec.ks),
                reconstruction_c=tuple(spec.cs),
                scores=r.scores,
                predictions=r.predictions,
            )
        )
    scores = pd.concat([e.scores for e in experiments], ignore_index=True)
    emergence = vision_emergence_table(scores)
    comparisons = tuple(c for name in settings.experiments for c in compare_headline(EXPERIMENTS[name], emergence))
    return VisionResult(settings, tuple(experiments), scores, emergence, comparisons, seconds)
