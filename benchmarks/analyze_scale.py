"""Benchmark: 1,000,000 sample records through every metric and a 1,000-resample bootstrap.

8 models x 5 tasks x 25,000 samples, targets of 1-8 tokens, 4-way multiple choice. The
records are generated first and written to Parquet; a fresh child process then reads them and
runs curves_from_records (all record metrics, Wilson intervals for binary metrics, a paired
bootstrap with --bootstrap resamples for the rest), so its peak RSS is the analysis's own.

Baseline measured in the same run: the textbook per-point percentile bootstrap
(``rng.choice`` resampling of each (model, task, metric) point separately) on a subset of
points, extrapolated to all points, against mirage's bootstrap on the same data.

    python benchmarks/analyze_scale.py [--samples 25000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_records(n_models: int, n_tasks: int, n_samples: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    scales = np.geomspace(1e7, 1e11, n_models)
    p_model = np.exp(-((scales / 2e9) ** -0.35))
    digits = np.array(list("0123456789"))
    tables = []
    for t in range(n_tasks):
        L = rng.integers(1, 9, n_samples)
        offsets = np.concatenate([[0], np.cumsum(L)]).astype(np.int32)
        tgt_flat = rng.integers(0, 10, offsets[-1])
        tgt_tokens = digits[tgt_flat]
        targets = ["".join(tgt_tokens[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        correct = rng.integers(0, 4, n_samples)
        for m, p in enumerate(p_model):
            right = rng.random(offsets[-1]) < p
            out_flat = np.where(right, tgt_flat, (tgt_flat + rng.integers(1, 10, offsets[-1])) % 10)
            out_tokens = digits[out_flat]
            outputs = ["".join(out_tokens[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
            lp = np.minimum(np.log(p) + rng.normal(0, 0.3, offsets[-1]), -1e-6)
            choice_lp = rng.normal(-12.0, 2.0, (n_samples, 4))
            choice_lp[np.arange(n_samples), correct] += 8.0 * p
            coff = np.arange(0, 4 * n_samples + 1, 4, dtype=np.int32)
            choice_strings = pa.array(np.repeat(np.array(["a", "b", "c", "d"]), 1).tolist() * n_samples)
            n = n_samples
            tables.append(
                pa.table(
                    {
                        "family": pa.array(["bench"] * n),
                        "model": pa.array([f"m{m}"] * n),
                        "scale": pa.array(np.full(n, scales[m])),
                        "task": pa.array([f"task{t}"] * n),
                        "sample_id": pa.array([str(i) for i in range(n)]),
                        "prompt": pa.array(["Q:"] * n),
                        "target": pa.array(targets),
                        "output": pa.array(outputs),
                        "target_tokens": pa.ListArray.from_arrays(pa.array(offsets), pa.array(tgt_tokens)),
                        "output_tokens": pa.ListArray.from_arrays(pa.array(offsets), pa.array(out_tokens)),
                        "target_logprobs": pa.ListArray.from_arrays(pa.array(offsets), pa.array(lp)),
                        "choices": pa.ListArray.from_arrays(pa.array(coff), choice_strings),
                        "choice_logprobs": pa.ListArray.from_arrays(pa.array(coff), pa.array(choice_lp.ravel())),
                        "choice_lengths": pa.ListArray.from_arrays(
                            pa.array(coff), pa.array(np.ones(4 * n, dtype=np.int64))
                        ),
                        "correct_choice": pa.array(correct.astype(np.int64)),
                    }
                )
            )
    return pa.concat_tables(tables)


def measure(path: str, n_boot: int) -> dict:
    """Runs in a fresh process: read, validate, every metric, intervals."""
    from mirage import AnalysisSettings
    from mirage.analysis.curves import curves_from_records
    from mirage.io.records import read_records

    t0 = time.perf_counter()
    table = read_records(path)
    t1 = time.perf_counter()
    curves, samples = curves_from_records(table, AnalysisSettings(bootstrap=n_boot, seed=0))
    t2 = time.perf_counter()
    # baseline on the same data: per-point rng.choice bootstrap for a subset of points
    rng = np.random.default_rng(0)
    cont = [
        m
        for m in (
            "token_edit_distance",
            "char_edit_distance",
            "target_logprob",
            "target_mean_logprob",
            "target_prob",
            "brier_score",
        )
        if m in samples.columns
    ]
    groups = samples.groupby(["model", "task"])
    n_points = len(groups) * len(cont)
    subset = list(groups)[:2]
    tb = time.perf_counter()
    for _, g in subset:
        for m in cont:
            v = g[m].to_numpy()
            means = np.array([v[rng.choice(len(v), len(v))].mean() for _ in range(n_boot)])
            np.quantile(means, [0.025, 0.975])
    per_point = (time.perf_counter() - tb) / (len(subset) * len(cont))
    # mirage's bootstrap alone on the same points, for a like-for-like ratio
    from mirage.stats import bootstrap_mean_ci

    tm = time.perf_counter()
    for _key, g in samples.groupby(["family", "task"]):
        wide = g.pivot(index="sample_id", columns="model", values=cont)
        bootstrap_mean_ci(wide.to_numpy(float), n_boot, seed=1)
    mirage_boot = time.perf_counter() - tm
    return {
        "records": table.num_rows,
        "curve_points": len(curves),
        "read_validate_s": t1 - t0,
        "metrics_and_intervals_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "bootstrap_points": n_points,
        "mirage_bootstrap_s": mirage_boot,
        "baseline_bootstrap_s_extrapolated": per_point * n_points,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--samples", type=int, default=25_000)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1, help="measured runs; the median is reported")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.bootstrap)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.parquet"
        t = time.perf_counter()
        pq.write_table(make_records(args.models, args.tasks, args.samples), path)
        print(
            f"generated {args.models * args.tasks * args.samples:,} records in {time.perf_counter() - t:.1f} s "
            f"({path.stat().st_size / 2**20:.0f} MiB Parquet)"
        )
        runs = []
        for _ in range(args.repeats):
            proc = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), "--bootstrap", str(args.bootstrap)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    print(f"records: {int(med['records']):,}   curve points: {int(med['curve_points'])}   bootstrap: {args.bootstrap}")
    print(f"read + validate:            {med['read_validate_s']:.1f} s")
    print(f"all metrics + intervals:    {med['metrics_and_intervals_s']:.1f} s")
    print(f"total wall time:            {med['total_s']:.1f} s   (aim: < 30 s)")
    print(f"peak memory (RSS):          {med['peak_rss_gib']:.2f} GiB (aim: < 4 GiB)")
    print(
        f"bootstrap of {int(med['bootstrap_points'])} continuous points: mirage {med['mirage_bootstrap_s']:.1f} s, "
        f"per-point rng.choice baseline {med['baseline_bootstrap_s_extrapolated']:.1f} s (extrapolated) "
        f"-> {med['baseline_bootstrap_s_extrapolated'] / med['mirage_bootstrap_s']:.1f}x faster"
    )


if __name__ == "__main__":
    main()
