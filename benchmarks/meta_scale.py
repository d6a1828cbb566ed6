"""Benchmark: ``mirage meta`` over 100,000 synthetic curves (target: under 60 s).

50 families x 250 tasks x 8 metrics (4 discontinuous, 4 continuous) = 100,000 curves of 8
models each (800,000 points): smooth power laws, sigmoids, flat-then-jump steps and noise,
seeded. Timed: the meta-analysis (every emergence score, shares per metric and kind, pairs,
re-scoring), then writing every output (CSV files, figures, report) atomically.

Baseline measured in the same run: the per-curve Python loop (``groupby`` + the scalar
:func:`mirage.stats.emergence_score` per curve) on a subset, extrapolated to all curves, against
the vectorised scoring on all curves; the two must agree bit for bit on that subset.

    python benchmarks/meta_scale.py [--families 50] [--tasks 250] [--baseline-curves 5000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mirage.analysis.meta import CURVE_KEY, curve_emergence, meta_analysis  # noqa: E402
from mirage.io.outputs import write_meta  # noqa: E402
from mirage.stats import emergence_score  # noqa: E402

METRICS = [
    ("exact_match", "discontinuous", True),
    ("multiple_choice_grade", "discontinuous", True),
    ("acc", "discontinuous", True),
    ("exact_str_match", "discontinuous", True),
    ("brier_score", "linear", False),
    ("token_edit_distance", "linear", False),
    ("ppl", "linear", False),
    ("log_likelihood", "linear", True),
]


def make_curves(n_families: int, n_tasks: int, n_models: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_curves = n_families * n_tasks * len(METRICS)
    scales = np.geomspace(1e7, 1e11, n_models)
    x = np.log10(scales)
    # per curve: a shape (0 power law, 1 sigmoid, 2 flat then jump, 3 noise) and its parameters
    shape = rng.integers(0, 4, n_curves)
    mid = rng.uniform(7.5, 10.5, n_curves)[:, None]
    width = rng.uniform(0.1, 1.0, n_curves)[:, None]
    p = np.exp(-((scales[None, :] / 10**mid) ** -0.4))  # per-token probability, smooth
    sig = 1 / (1 + np.exp(-(x[None, :] - mid) / width))
    step = np.where(x[None, :] >= mid, 0.8, 0.0)
    noise = rng.uniform(0.2, 0.3, (n_curves, n_models))
    y = np.select([shape[:, None] == 0, shape[:, None] == 1, shape[:, None] == 2], [p, sig, step], noise)
    metric_idx = np.tile(np.arange(len(METRICS)), n_families * n_tasks)
    lower = np.array([not m[2] for m in METRICS])[metric_idx]
    is_ppl = np.array([m[0] == "ppl" for m in METRICS])[metric_idx]
    y = np.where(lower[:, None], 1.0 - y, y)
    y = np.where(is_ppl[:, None], 1.0 / np.clip(1.0 - y, 1e-3, None), y)  # perplexity-like: > 1, falling
    curve = np.repeat(np.arange(n_curves), n_models)
    fam = curve // (n_tasks * len(METRICS))
    task = (curve // len(METRICS)) % n_tasks
    m = metric_idx[curve]
    names = np.array([mm[0] for mm in METRICS])
    kinds = np.array([mm[1] for mm in METRICS])
    higher = np.array([mm[2] for mm in METRICS])
    model = np.tile(np.arange(n_models), n_curves)
    return pd.DataFrame(
        {
            "family": pd.Categorical.from_codes(fam, [f"fam{i:03d}" for i in range(n_families)]).astype(str),
            "model": pd.Categorical.from_codes(model, [f"m{i}" for i in range(n_models)]).astype(str),
            "scale": np.tile(scales, n_curves),
            "task": pd.Categorical.from_codes(task, [f"task{i:04d}" for i in range(n_tasks)]).astype(str),
            "shots": 0,
            "metric": names[m],
            "metric_kind": kinds[m],
            "higher_is_better": higher[m],
            "value": y.ravel(),
        }
    )


def loop_scores(curves: pd.DataFrame) -> dict:
    """The baseline: one scalar emergence_score call per curve."""
    return {
        key: emergence_score(g["scale"].to_numpy(), g["value"].to_numpy()).score
        for key, g in curves.groupby(CURVE_KEY, sort=True)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=250)
    ap.add_argument("--baseline-curves", type=int, default=5000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    curves = make_curves(args.families, args.tasks)
    n_curves = curves.groupby(CURVE_KEY).ngroups
    print(f"generated {n_curves:,} curves, {len(curves):,} points in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    result = meta_analysis(curves, threshold=2.0)
    t_meta = time.perf_counter() - t0
    s = result.summary
    print(
        f"meta_analysis: {t_meta:.2f} s ({s['n_apparent']:,} apparent emergences, "
        f"{s['n_flat_then_jump']:,} flat then jump, {len(result.pairs):,} pairs)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_meta(result, Path(tmp) / "meta")
        t_write = time.perf_counter() - t0
    print(f"write_meta (CSV + figures + report): {t_write:.2f} s")
    total = t_meta + t_write
    print(f"total: {total:.2f} s for {n_curves:,} curves (target < 60 s: {'PASS' if total < 60 else 'FAIL'})")

    # baseline on a subset: the first families' curves, as whole curves
    per_family = n_curves // args.families
    keep_fams = sorted(curves["family"].unique())[: max(1, int(np.ceil(args.baseline_curves / per_family)))]
    subset = curves[curves["family"].isin(keep_fams)]
    n_sub = subset.groupby(CURVE_KEY).ngroups
    t0 = time.perf_counter()
    base = loop_scores(subset)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    vec = curve_emergence(curves)
    t_vec = time.perf_counter() - t0
    got = vec.set_index(CURVE_KEY)["emergence_score"]
    mismatch = sum(1 for key, v in base.items() if not (got.loc[key] == v or (np.isnan(v) and np.isnan(got.loc[key]))))
    loop_all = t_loop * n_curves / n_sub
    print(
        f"baseline per-curve loop: {t_loop:.2f} s for {n_sub:,} curves -> {loop_all:.1f} s extrapolated to {n_curves:,}"
    )
    print(f"vectorised curve_emergence on all {n_curves:,} curves: {t_vec:.2f} s; speed-up x{loop_all / t_vec:.1f}")
    print(f"agreement with mirage.stats.emergence_score on {n_sub:,} curves: {n_sub - mismatch:,}/{n_sub:,} identical")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MiB")
    if mismatch:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
