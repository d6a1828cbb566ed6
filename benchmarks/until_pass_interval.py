"""The exact interval of ``mirage eval --until-pass`` pass rates: coverage, width and time.

Simulated designs (n items, each sampled until its first pass or K attempts), analysed exactly
as ``mirage analyze`` does (:func:`mirage.stats.pass_until.pass_rate_estimate`, 95 %). Prints

1. over a grid of item counts n, limits K and rates p (p K from 0.02, nearly every item failing,
   to 10, nearly every item passing): how often the interval covers the true rate (it must be
   at least 95 % up to simulation error), its median width relative to p, and the same for the
   Clopper-Pearson interval of the passes alone (what ignoring the attempts would give: the
   baseline, measured in the same run);
2. for items that differ (log-uniform pass probabilities): how often the interval covers the
   pooled rate E[passes] / E[attempts] that the teacher-forced check predicts;
3. the exact coverage of one design too large for the tests' enumeration (40 items, K = 32, p K = 1),
   summed over every outcome of probability above 1e-12: outcomes whose two tails at the true p are
   both above 10 % are covered by any interval of this ordering; the others get their interval
   computed by the module;
4. the time of one estimate for the design of docs/eval.md (500 items, K = 200) and for 2,000
   items x K = 1,000.

    python benchmarks/until_pass_interval.py              # 300 runs per cell, about 17 minutes on 2 busy cores
    python benchmarks/until_pass_interval.py --runs 100   # quicker
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from mirage.stats.pass_until import pass_rate_estimate, predicted_pass_rate


def simulate(pi: np.ndarray, k: int, rng: np.random.Generator) -> tuple[int, int]:
    """(items passed, failed attempts of the passing items) of one run of the design."""
    failures = rng.geometric(pi) - 1
    passed = failures < k
    return int(passed.sum()), int(failures[passed].sum())


def passes_only_width(n: int, s: int, k: int) -> float:
    """Width of the Clopper-Pearson interval of s of n items passing, as a per-sample rate."""
    low = stats.beta.ppf(0.025, s, n - s + 1) if s > 0 else 0.0
    high = stats.beta.ppf(0.975, s + 1, n - s) if s < n else 1.0
    high_p = 1.0 if high >= 1 else -np.expm1(np.log1p(-high) / k)  # every item passing: no upper bound
    return float(high_p + np.expm1(np.log1p(-low) / k))


def coverage_cell(n: int, k: int, p: float, runs: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(coverage of p, median width / p, median passes-only width / p) over ``runs`` simulated runs."""
    covered, widths, naive = 0, [], []
    seen: dict[tuple[int, int], tuple[float, float]] = {}
    for _ in range(runs):
        s, t = simulate(np.full(n, p), k, rng)
        if (s, t) not in seen:
            est = pass_rate_estimate(n, s, t, k)
            seen[(s, t)] = (est.ci_low, est.ci_high)
        low, high = seen[(s, t)]
        covered += low <= p <= high
        widths.append((high - low) / p)
        naive.append(passes_only_width(n, s, k) / p)
    return covered / runs, float(np.median(widths)), float(np.median(naive))


def exact_coverage(n: int, k: int, p: float) -> tuple[float, int]:
    """The coverage of p by the module's intervals, summed over every outcome (s, t) of probability
    above 1e-12 (enumerated by direct convolution, independently of the module), and how many
    intervals that took."""
    q = -np.expm1(k * np.log1p(-p))
    one = p * np.exp(np.arange(k) * np.log1p(-p)) / q
    outcomes, pmf = [], np.ones(1)
    for s in range(n + 1):
        if s:
            pmf = np.convolve(pmf, one)
        prob = stats.binom.pmf(s, n, q) * pmf
        for t in np.nonzero(prob > 1e-12)[0]:
            outcomes.append((s, int(t), float(prob[t])))
    # ordered by the estimate s / N with exact fractions' cross-multiplication left to floats: the
    # estimates of different outcomes differ by far more than rounding here
    mle = np.array([s / (s + t + (n - s) * k) for s, t, _ in outcomes])
    prob = np.array([w for _, _, w in outcomes])
    order = np.argsort(mle, kind="stable")
    sorted_mle, sorted_prob = mle[order], prob[order]
    cum = np.cumsum(sorted_prob)
    at_most = cum[np.searchsorted(sorted_mle, mle, side="right") - 1]  # P(estimate <= this one)
    at_least = cum[-1] - np.concatenate([[0.0], cum])[np.searchsorted(sorted_mle, mle, side="left")]
    covered, computed = 0.0, 0
    for (s, t, w), up, down in zip(outcomes, at_least, at_most):
        if up > 0.1 and down > 0.1:
            covered += w
            continue
        est = pass_rate_estimate(n, s, t, k)
        computed += 1
        covered += w if est.ci_low <= p <= est.ci_high else 0.0
    return covered, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="simulated runs per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    print(f"1. equal items, {args.runs} runs per cell: coverage of the true rate (95 % interval)", flush=True)
    print(f"{'n':>5} {'K':>5} {'p K':>6} {'p':>9} {'coverage':>9} {'width/p':>8} {'passes only':>12}", flush=True)
    cells = []
    for n in (10, 40, 160):
        for k in (1, 4, 32, 256):
            for lam in (0.02, 0.2, 1.0, 3.0, 10.0):
                p = min(lam / k, 0.9)
                if k == 1 and lam > 1:  # p K > 1 needs K > 1
                    continue
                cov, width, naive = coverage_cell(n, k, p, args.runs, rng)
                cells.append(cov)
                print(f"{n:5d} {k:5d} {p * k:6.2f} {p:9.3g} {cov:9.3f} {width:8.3f} {naive:12.3f}", flush=True)
    se = math.sqrt(0.95 * 0.05 / args.runs)
    low = sum(c < 0.95 - 2 * se for c in cells)
    print(
        f"coverage over {len(cells)} cells: median {np.median(cells):.3f}, min {min(cells):.3f}; "
        f"{low} below 0.95 - 2 se = {0.95 - 2 * se:.3f} (about {0.023 * len(cells):.1f} expected by chance "
        "for an interval of exactly 95 %)",
        flush=True,
    )

    print(f"\n2. items that differ: coverage of E[passes] / E[attempts], {args.runs} runs per design", flush=True)
    print(f"{'n':>5} {'K':>5} {'pass probabilities':>20} {'coverage':>9}", flush=True)
    for n_items, limit, lo_pi, hi_pi in (
        (60, 64, 1e-3, 0.2),
        (160, 100, 1e-4, 0.05),
        (60, 20, 1e-3, 0.5),
        (100, 256, 1e-5, 1e-2),
    ):
        pi = np.exp(rng.uniform(np.log(lo_pi), np.log(hi_pi), n_items))
        _, _, truth = predicted_pass_rate(pi, limit)
        covered = 0
        for _ in range(args.runs):
            s, t = simulate(pi, limit, rng)
            if s == 0:
                covered += pass_rate_estimate(n_items, 0, 0, limit).ci_high >= truth
                continue
            est = pass_rate_estimate(n_items, s, t, limit)
            covered += est.ci_low <= truth <= est.ci_high
        print(f"{n_items:5d} {limit:5d} {f'{lo_pi:g} .. {hi_pi:g}':>20} {covered / args.runs:9.3f}", flush=True)

    n_items, limit, lam = 40, 32, 1.0
    covered, computed = exact_coverage(n_items, limit, lam / limit)
    print(
        f"\n3. exact coverage, {n_items} items, K = {limit}, p K = {lam}: {covered:.5f} "
        f"({computed} intervals computed)",
        flush=True,
    )

    print("\n4. time of one estimate", flush=True)
    for n_items, limit, lam in ((500, 200, 0.2), (2000, 1000, 0.3), (2000, 1000, 3.0)):
        s, t = simulate(np.full(n_items, lam / limit), limit, rng)
        began = time.perf_counter()
        est = pass_rate_estimate(n_items, s, t, limit)
        spent = time.perf_counter() - began
        print(
            f"{n_items} items x K = {limit}, p K = {lam}: {spent:.2f} s "
            f"({est.passed} passed, rate {est.rate:.3g}, {est.ci_low:.3g} - {est.ci_high:.3g}, {est.method})",
            flush=True,
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
