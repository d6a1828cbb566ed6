"""Benchmark: ``mirage analyze`` at the sizes users have, against the unvectorised analysis.

Two inputs, each analysed end to end (read, every table, figures, report, written atomically) in a
fresh child process, so its wall time and peak RSS are the command's own:

``--curves N``: a long score table (CSV) of N curves: 10 families x 8 models x N/100 tasks x 10
    metrics (acc, acc_norm, exact_match, exact_str_match, mc1; ppl, word_perplexity, bits_per_byte,
    log_likelihood, brier_score) with stderr and n_samples, per-token losses that are smooth power
    laws, broken (a 3-10x drop between neighbours), flat or noise. 250,000 curves = 2,000,000 rows.
``--records N``: N sample records in one Parquet file, a row group per (family, task): 5 families x
    8 models x 5 tasks x N/200 samples, targets of 1-8 tokens, 4-way multiple choice, every metric,
    ``--bootstrap`` resamples; ``samples.parquet`` is written unit by unit.

Baseline measured in the same run: the analysis as it was before (``tests/reference_analysis``: one
group, one curve, one model at a time, every record in memory) on a subset of the same input (the
first tasks of every family), extrapolated linearly to the whole, against mirage's analysis stage
on the whole; the subset's tables must agree exactly with mirage's. Medians over ``--repeats``.

    python benchmarks/analyze_scale.py --curves 250000
    python benchmarks/analyze_scale.py --records 10000000
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SCORE_METRICS = (
    ("acc", "d"),
    ("acc_norm", "d"),
    ("exact_match", "d"),
    ("exact_str_match", "d"),
    ("mc1", "d"),
    ("ppl", "c"),
    ("word_perplexity", "c"),
    ("bits_per_byte", "c"),
    ("log_likelihood", "c"),
    ("brier_score", "c"),
)
FAMILIES, MODELS = 10, 8
REC_FAMILIES, REC_TASKS = 5, 5


# ----------------------------------------------------------------------------- inputs


def make_scores(
    n_families: int, n_tasks: int, n_models: int = MODELS, n_samples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """A long score table: n_families x n_tasks x 10 metrics curves of n_models points."""
    rng = np.random.default_rng(seed)
    G = n_families * n_tasks
    scales = np.geomspace(1e7, 1e11, n_models)
    lx = np.log(scales / 1e7)
    alpha = rng.uniform(-0.7, -0.3, G)[:, None]
    ce = rng.uniform(0.0, 0.3, G)[:, None] + rng.uniform(1.0, 4.0, G)[:, None] * np.exp(alpha * lx[None, :])
    shape = rng.integers(0, 4, G)  # 0 smooth, 1 broken, 2 smooth, 3 noise in one metric
    at = rng.integers(2, n_models - 1, G)
    after = np.arange(n_models)[None, :] >= at[:, None]
    ce = np.where((shape == 1)[:, None] & after, ce / rng.uniform(3, 10, G)[:, None], ce)
    ce = ce * np.exp(rng.normal(0, 0.02, ce.shape))
    length = rng.integers(1, 9, G)[:, None]
    p = np.exp(-ce)
    acc = np.clip(np.exp(-length * ce) + rng.normal(0, 0.005, ce.shape), 0, 1)
    values = {
        "acc": acc,
        "acc_norm": np.clip(0.25 + 0.75 * acc + rng.normal(0, 0.005, ce.shape), 0, 1),
        "exact_match": np.clip(p ** (length + 1) + rng.normal(0, 0.005, ce.shape), 0, 1),
        "exact_str_match": np.where((shape == 3)[:, None], rng.uniform(0.2, 0.3, ce.shape), acc),
        "mc1": np.clip(0.2 + 0.8 * p**2, 0, 1),
        "ppl": np.exp(ce),
        "word_perplexity": np.exp(1.3 * ce),
        "bits_per_byte": ce / np.log(2) * 0.8,
        "log_likelihood": -ce * length,
        "brier_score": np.clip(1 - p, 0, 1),
    }
    fam = np.repeat(np.arange(n_families), n_tasks)
    task = np.tile(np.arange(n_tasks), n_families)
    gi = np.repeat(np.arange(G), n_models)
    mi = np.tile(np.arange(n_models), G)
    family_names = np.array([f"fam{i:02d}" for i in range(n_families)], dtype=object)
    task_names = np.array([f"task{i:05d}" for i in range(n_tasks)], dtype=object)
    model_names = np.array([f"m{i}" for i in range(n_models)], dtype=object)
    frames = []
    for name, kind in SCORE_METRICS:
        v = values[name]
        se = np.sqrt(np.clip(v * (1 - v), 1e-6, None) / n_samples) if kind == "d" else np.abs(v) * 0.01
        frames.append(
            pd.DataFrame(
                {
                    "family": family_names[fam[gi]],
                    "model": model_names[mi],
                    "params": scales[mi],
                    "task": task_names[task[gi]],
                    "shots": 0,
                    "metric": name,
                    "value": v.ravel(),
                    "stderr": se.ravel(),
                    "n_samples": n_samples,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _strings(lengths: np.ndarray, chars: np.ndarray) -> pa.Array:
    """One ASCII string per row from a flat array of single characters."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    data = chars.astype("S1").tobytes()
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


def _token_lists(lengths: np.ndarray, chars: np.ndarray) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    tokens = _strings(np.ones(len(chars), dtype=np.int64), chars)
    return pa.ListArray.from_arrays(pa.array(offsets), tokens)


def unit_records(family: int, task: int, n_samples: int, n_models: int = MODELS, seed: int = 0) -> pa.Table:
    """The records of one (family, task): n_models x n_samples, generation and 4-way choice."""
    rng = np.random.default_rng([seed, family, task])
    scales = np.geomspace(1e7, 1e11, n_models) * (1 + 0.01 * family)
    p_model = np.exp(-((scales / 2e9) ** -0.35))
    digits = np.frombuffer(b"0123456789", dtype="S1")
    L = rng.integers(1, 9, n_samples)
    total = int(L.sum())
    target_digits = rng.integers(0, 10, total)
    correct = rng.integers(0, 4, n_samples)
    n = n_samples
    sample_ids = pa.array(np.char.mod("%d", np.arange(n)).astype(object))
    tables = []
    for m, p in enumerate(p_model):
        right = rng.random(total) < p
        out_digits = np.where(right, target_digits, (target_digits + rng.integers(1, 10, total)) % 10)
        lp = np.minimum(np.log(p) + rng.normal(0, 0.3, total), -1e-6)
        choice_lp = rng.normal(-12.0, 2.0, (n, 4))
        choice_lp[np.arange(n), correct] += 8.0 * p
        coff = pa.array(np.arange(0, 4 * n + 1, 4, dtype=np.int32))
        loff = pa.array(np.concatenate([[0], np.cumsum(L)]).astype(np.int32))
        tables.append(
            pa.table(
                {
                    "family": pa.array(np.full(n, f"fam{family}", dtype=object)),
                    "model": pa.array(np.full(n, f"fam{family}-m{m}", dtype=object)),
                    "scale": pa.array(np.full(n, scales[m])),
                    "task": pa.array(np.full(n, f"task{task}", dtype=object)),
                    "sample_id": sample_ids,
                    "prompt": pa.array(np.full(n, "Q:", dtype=object)),
                    "target": _strings(L, digits[target_digits]),
                    "output": _strings(L, digits[out_digits]),
                    "target_tokens": _token_lists(L, digits[target_digits]),
                    "output_tokens": _token_lists(L, digits[out_digits]),
                    "target_logprobs": pa.ListArray.from_arrays(loff, pa.array(lp)),
                    "choices": pa.ListArray.from_arrays(coff, pa.array(np.tile(["a", "b", "c", "d"], n))),
                    "choice_logprobs": pa.ListArray.from_arrays(coff, pa.array(choice_lp.ravel())),
                    "choice_lengths": pa.ListArray.from_arrays(coff, pa.array(np.ones(4 * n, dtype=np.int64))),
                    "correct_choice": pa.array(correct.astype(np.int64)),
                }
            )
        )
    return pa.concat_tables(tables)


def write_records(path: Path, n_records: int) -> int:
    per_task = max(1, n_records // (REC_FAMILIES * REC_TASKS * MODELS))
    writer = None
    rows = 0
    for f in range(REC_FAMILIES):
        for t in range(REC_TASKS):
            table = unit_records(f, t, per_task)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    assert writer is not None
    writer.close()
    return rows


# ----------------------------------------------------------------------------- the measured child


def measure(path: str, out: str, bootstrap: int) -> dict:
    """In a fresh process: what ``mirage analyze PATH --out OUT`` does, stage by stage."""
    sys.path.insert(0, str(ROOT / "src"))
    from mirage.analysis.analyze import run_analysis
    from mirage.io.inputs import read_inputs
    from mirage.io.outputs import open_analysis_output, write_analysis_into
    from mirage.schema.settings import AnalysisSettings

    t0 = time.perf_counter()
    inputs = read_inputs([path])
    t1 = time.perf_counter()
    with open_analysis_output(out) as output:
        streamed = output.samples.write if inputs.records is not None else None
        result = run_analysis(inputs, AnalysisSettings(bootstrap=bootstrap), on_samples=streamed)
        output.samples.close()
        t2 = time.perf_counter()
        write_analysis_into(result, output.directory)
    t3 = time.perf_counter()
    return {
        "read_s": t1 - t0,
        "analyse_s": t2 - t1,
        "write_s": t3 - t2,
        "total_s": t3 - t0,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "curves": int(result.summary["n_curves"]),
        "verdicts": int(len(result.verdicts)),
        "records": int(result.summary["n_records"]),
    }


def baseline(path: str, bootstrap: int, share: float) -> dict:
    """In a fresh process: the reference analysis on the first ``share`` of every family's tasks,
    and mirage's on the same subset, whose tables must agree exactly."""
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_analysis import analyze as reference

    from mirage.analysis.analyze import run_analysis
    from mirage.io.inputs import read_inputs
    from mirage.schema.settings import AnalysisSettings

    inputs = read_inputs([path])
    settings = AnalysisSettings(bootstrap=bootstrap)
    if inputs.scores is not None:
        tasks = sorted(inputs.scores["task"].unique())
        keep = set(tasks[: max(1, int(round(len(tasks) * share)))])
        subset = dataclasses.replace(
            inputs, scores=inputs.scores[inputs.scores["task"].isin(keep)].reset_index(drop=True)
        )
        ref_inputs = subset
    else:
        source = inputs.records
        units = source.units()
        n_keep = max(1, int(round(len(units) * share)))
        table = pa.concat_tables(u.table for u in itertools.islice(source.iter_units(), n_keep))
        subset = dataclasses.replace(inputs, records=table)
        ref_inputs = subset
    t0 = time.perf_counter()
    ref = reference.run_analysis(ref_inputs, settings)
    t1 = time.perf_counter()
    new = run_analysis(subset, settings)
    same = all(
        getattr(new, name).equals(getattr(ref, name))
        for name in ("curves", "emergence", "verdicts", "evidence")
        if getattr(ref, name) is not None
    )
    return {
        "reference_s": t1 - t0,
        "share": share,
        "identical": bool(same),
        "subset_curves": int(ref.summary["n_curves"]),
    }


def child(args: list[str]) -> tuple[dict, float, float]:
    """Run this script in a fresh process; (its JSON answer, wall seconds, peak RSS GiB from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"child failed with status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), wall, usage.ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curves", type=int, help="score-table curves (10 families x 8 models x tasks x 10 metrics)")
    ap.add_argument("--records", type=int, help="sample records (5 families x 8 models x 5 tasks x samples)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1, help="measured runs; medians are reported")
    ap.add_argument("--baseline-share", type=float, default=None, help="share of the tasks the reference analyses")
    ap.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.bootstrap)))
        return
    if args.baseline:
        print(json.dumps(baseline(args.baseline, args.bootstrap, args.baseline_share)))
        return
    if args.curves is None and args.records is None:
        args.records = 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if args.curves is not None:
            n_tasks = max(1, args.curves // (FAMILIES * len(SCORE_METRICS)))
            path = Path(tmp) / "scores.csv"
            table = make_scores(FAMILIES, n_tasks)
            table.to_csv(path, index=False)
            what = f"{FAMILIES * n_tasks * len(SCORE_METRICS):,} curves, {len(table):,} score rows"
            del table
            share = args.baseline_share or 0.02
            aim_s, aim_gib = 60, 2
        else:
            path = Path(tmp) / "records.parquet"
            n = write_records(path, args.records)
            what = f"{n:,} records ({REC_FAMILIES} families x {MODELS} models x {REC_TASKS} tasks)"
            share = args.baseline_share or 1 / (REC_FAMILIES * REC_TASKS)
            aim_s, aim_gib = 90, 4
        print(f"input: {what}; {path.stat().st_size / 2**20:.0f} MiB, made in {time.perf_counter() - t:.0f} s")
        runs = []
        for r in range(args.repeats):
            got, wall, rss = child(
                ["--measure", str(path), str(Path(tmp) / f"out{r}"), "--bootstrap", str(args.bootstrap)]
            )
            runs.append(dict(got, wall_s=wall, child_rss_gib=rss))
        base, base_wall, _ = child(
            ["--baseline", str(path), "--bootstrap", str(args.bootstrap), "--baseline-share", str(share)]
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"curves: {int(med['curves']):,}   verdicts: {int(med['verdicts']):,}   records: {int(med['records']):,}")
    print(f"read + validate:     {med['read_s']:6.1f} s")
    print(f"analyse:             {med['analyse_s']:6.1f} s")
    print(f"write (tables, figures, report): {med['write_s']:6.1f} s")
    print(
        f"wall time, fresh process (start-up included): {med['wall_s']:.1f} s (aim <= {aim_s} s: "
        f"{'PASS' if med['wall_s'] <= aim_s else 'FAIL'}); median of {args.repeats}"
    )
    print(
        f"peak RSS of that process: {med['child_rss_gib']:.2f} GiB (aim <= {aim_gib} GiB: "
        f"{'PASS' if med['child_rss_gib'] <= aim_gib else 'FAIL'})"
    )
    extrapolated = base["reference_s"] / base["share"]
    print(
        f"baseline: the unvectorised analysis on {base['share']:.1%} of the tasks ({base['subset_curves']:,} curves) "
        f"took {base['reference_s']:.1f} s -> {extrapolated:.0f} s for the whole; mirage's analysis stage "
        f"{med['analyse_s']:.1f} s: {extrapolated / med['analyse_s']:.1f}x faster; subset tables identical: "
        f"{'yes' if base['identical'] else 'NO'}"
    )
    if not base["identical"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
