"""Back-test the forecast on known truths: can the smaller models of a family predict when its
exact match will cross 50 %?

For each family drawn from :mod:`mirage.synthetic` (smooth power-law per-token loss with 12-16
models; real jumps and loss thresholds), the forecast is fitted on the models whose exact match is
still at the floor's edge (observed exact match at most ``--edge``, 0.05) and the larger models are
held out, as an "emergence prediction" would be made before the ability shows. Printed:

- smooth families: the share whose predicted 50 % crossing scale is within a factor of 2 of the
  truth (the crossing of the expected exact match of the truth's own item distribution), and the
  share of held-out points whose interval the 90 % band covers;
- jump and threshold families: the share for which the back-test reports a miss (a held-out point
  outside the band) or the forecast is declined or flagged unreliable.

    python benchmarks/forecast_backtest.py            # 60 families per truth
    python benchmarks/forecast_backtest.py --families 20 --bootstrap 200
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import pandas as pd

from mirage import ForecastSettings, Inputs, run_forecast
from mirage.synthetic import TruthSpec, _lognormal_unit_mean, _with_threshold, known_truth_records


def true_crossing(spec: TruthSpec, level: float = 0.5, n_items: int = 20000) -> float:
    """Scale at which the truth's expected exact match reaches ``level`` (no sampling noise)."""
    rng = np.random.default_rng(12345)
    lengths = np.resize(np.asarray(spec.lengths, dtype=np.int64), n_items)
    item = _lognormal_unit_mean(rng, spec.item_sd, n_items)
    tok_sum = np.array([_lognormal_unit_mean(rng, spec.token_sd, L).sum() for L in lengths])
    x = spec.scales
    grid = np.geomspace(x[0], x[-1] * 1e3, 400)
    ce_top = -math.log(spec.top_p)
    ce = ce_top * (grid / x[-1]) ** spec.alpha
    em = np.mean(np.exp(-np.outer(ce, item * tok_sum)), axis=1)
    above = np.flatnonzero(em >= level)
    if not len(above):
        return math.nan
    j = int(above[0])
    if j == 0:
        return float(grid[0])
    t = (level - em[j - 1]) / (em[j] - em[j - 1])
    return float(np.exp(np.log(grid[j - 1]) + t * (np.log(grid[j]) - np.log(grid[j - 1]))))


def family(truth: str, rng: np.random.Generator, i: int) -> TruthSpec:
    k = int(rng.integers(12, 17))
    L = int(rng.integers(2, 9))
    spec = TruthSpec(
        truth,
        n_models=k,
        decades=float(rng.uniform(3, 5)),
        n_samples=int(rng.choice([500, 1000, 2000])),
        lengths=(L,),
        alpha=float(rng.uniform(-0.7, -0.3)),
        top_p=float(rng.uniform(0.6, 0.95) ** (1.0 / L)),
        jump_factor=float(rng.uniform(3, 10)),
        seed=int(rng.integers(0, 2**31 - 1)),
        family=f"{truth}-{i}",
    )
    if truth == "threshold":
        spec = _with_threshold(spec, float(rng.random()))
    return spec


def backtest(spec: TruthSpec, edge: float, bootstrap: int) -> dict:
    records = known_truth_records(spec)
    frame = records.select(["model", "scale", "output", "target"]).to_pandas()
    frame["exact_match"] = (frame["output"].str.strip() == frame["target"].str.strip()).astype(float)
    em = (
        frame.groupby(["model", "scale"], as_index=False)["exact_match"]
        .mean()
        .rename(columns={"exact_match": "value"})
        .sort_values("scale")
    )
    at_edge = em[em["value"] <= edge]
    if len(at_edge) < 3 or len(at_edge) == len(em):
        return dict(truth=spec.truth, usable=False)
    split = float(at_edge["scale"].iloc[-1])
    res = run_forecast(Inputs(None, records), ForecastSettings(backtest_above=split, bootstrap=bootstrap))
    bt = res.backtests
    fit = res.fits.iloc[0]
    covered = bt["covered"].dropna().astype(bool)
    return dict(
        truth=spec.truth,
        usable=True,
        n_models=spec.n_models,
        n_fit=int(fit["n_models"]),
        status=fit["status"],
        predicted_crossing=float(bt["crossing_predicted"].iloc[0]) if len(bt) else math.nan,
        true_crossing=true_crossing(spec) if spec.truth == "smooth" else math.nan,
        held_out=int(len(bt)),
        covered=int(covered.sum()),
        n_judged=int(len(covered)),
        miss=bool((~covered).any()),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", type=int, default=60, help="families per truth")
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--edge", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    t0 = time.perf_counter()
    for truth in ("smooth", "jump", "threshold"):
        made = 0
        tries = 0
        while made < args.families and tries < 5 * args.families:
            tries += 1
            r = backtest(family(truth, rng, tries), args.edge, args.bootstrap)
            if r["usable"]:
                rows.append(r)
                made += 1
        print(
            f"  {truth}: {made} families ({tries - made} skipped: fewer than 3 models at the floor's edge, "
            f"or none past it), {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    t = pd.DataFrame(rows)
    smooth = t[t.truth == "smooth"]
    ratio = smooth["predicted_crossing"] / smooth["true_crossing"]
    within2 = ((ratio >= 0.5) & (ratio <= 2.0)).mean()
    coverage = smooth["covered"].sum() / max(smooth["n_judged"].sum(), 1)
    print(f"{len(t)} families in {time.perf_counter() - t0:.0f} s\n")
    print("smooth power-law loss (fitted on the models at the floor's edge, larger models held out):")
    print(
        f"  predicted 50 % crossing within a factor of 2 of the truth: {within2:.2f} of {len(smooth)} families "
        f"(aim >= 0.80); median ratio predicted/true {np.nanmedian(ratio):.2f}, "
        f"central 80 % {np.nanquantile(ratio, 0.1):.2f}-{np.nanquantile(ratio, 0.9):.2f}"
    )
    print(f"  90 % band covers {coverage:.2f} of {int(smooth['n_judged'].sum())} held-out points (aim >= 0.80)")
    print(f"  status: {smooth['status'].value_counts().to_dict()}")
    for truth in ("jump", "threshold"):
        s = t[t.truth == truth]
        flagged = s["status"].isin(["declined", "unreliable"]) | s["miss"]
        print(
            f"{truth}: back-test reports a miss or the forecast declines / is flagged: {flagged.mean():.2f} of "
            f"{len(s)} families (aim >= 0.90); status {s['status'].value_counts().to_dict()}, "
            f"misses {int(s['miss'].sum())}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
