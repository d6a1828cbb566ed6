"""Known-truth grid for the verdicts: does mirage recover the truth whatever the family looks like?

Families drawn by :func:`mirage.synthetic.grid_specs` (six truths x 4-16 models x 2-5 decades x
200-5000 samples x target lengths 1-8), each analysed exactly as ``mirage analyze`` analyses
records (curves with Wilson intervals, per-sample metrics, :func:`mirage.analysis.verdicts.verdicts_table`).
Prints the confusion matrix truth x verdict, the rates the verdict rule is held to, and how the
rates depend on the number of models.

    python benchmarks/verdict_grid.py                 # the full grid (about 1,400 families)
    python benchmarks/verdict_grid.py --repeats 1 --samples 200,1000   # a smaller one
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from mirage import AnalysisSettings
from mirage.analysis.curves import curves_from_records
from mirage.analysis.verdicts import verdicts_table
from mirage.schema.settings import VerdictSettings
from mirage.schema.vocab import VERDICT_ORDER, Verdict
from mirage.synthetic import EXPECTED_VERDICT, TRUTHS, grid_specs, known_truth_records


def verdict_of(spec, settings: VerdictSettings = VerdictSettings()) -> dict:
    """The verdict of one known-truth family (its discontinuous metric: exact match or MC grade)."""
    records = known_truth_records(spec)
    curves, samples = curves_from_records(records, AnalysisSettings(bootstrap=0))
    verdicts, _ = verdicts_table(curves, samples, settings)
    metric = "multiple_choice_grade" if spec.truth.endswith("_mc") else "exact_match"
    row = verdicts[verdicts["discontinuous_metric"] == metric].iloc[0]
    return dict(
        truth=spec.truth,
        n_models=spec.n_models,
        decades=spec.decades,
        n_samples=spec.n_samples,
        lengths="1-8" if len(spec.lengths) > 1 else str(spec.lengths[0]),
        verdict=row["verdict"],
        apparent=bool(row["apparent_emergence"]),
        reason=row["reason"],
    )


def rates(table: pd.DataFrame) -> pd.DataFrame:
    """The rates the rule is held to (families with >= 200 samples)."""
    t = table[table["n_samples"] >= 200]
    out = []

    def share(mask, of):
        n = int(of.sum())
        return (float((mask & of).sum() / n) if n else float("nan")), n

    for truth, aim, want in (
        ("smooth", 0.90, Verdict.EXPLAINED),
        ("smooth_mc", 0.85, Verdict.EXPLAINED),
        ("jump", 0.95, Verdict.NOT_EXPLAINED),
        ("threshold", 0.85, Verdict.NOT_EXPLAINED),
        ("threshold_mc", 0.85, Verdict.NOT_EXPLAINED),
    ):
        of = (t["truth"] == truth) & t["apparent"]
        r, n = share(t["verdict"] == want, of)
        out.append(dict(check=f"{truth}, looks emergent -> {want}", share=r, families=n, aim=f">= {aim:.2f}"))
    of = t["truth"] == "jump"
    r, n = share(t["verdict"] == Verdict.EXPLAINED, of)
    out.append(dict(check="jump -> explained by metric", share=r, families=n, aim="0"))
    of = t["truth"] == "no_emergence"
    r, n = share(t["verdict"].isin([Verdict.EXPLAINED, Verdict.NOT_EXPLAINED]), of)
    out.append(dict(check="no_emergence -> an emergence verdict", share=r, families=n, aim="0"))
    return pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truths", default=",".join(TRUTHS))
    ap.add_argument("--models", default="4,6,8,12,16")
    ap.add_argument("--decades", default="2,3,4,5")
    ap.add_argument("--samples", default="200,1000,5000")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", default=None, help="also write every family's verdict to this CSV")
    args = ap.parse_args(argv)
    specs = grid_specs(
        truths=args.truths.split(","),
        n_models=[int(v) for v in args.models.split(",")],
        decades=[float(v) for v in args.decades.split(",")],
        n_samples=[int(v) for v in args.samples.split(",")],
        repeats=args.repeats,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    rows = []
    for i, spec in enumerate(specs, 1):
        rows.append(verdict_of(spec))
        if i % 100 == 0 or i == len(specs):
            print(f"  {i}/{len(specs)} families, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(f"{len(table)} families in {time.perf_counter() - t0:.0f} s\n")
    print("confusion matrix (rows: truth, expected verdict; columns: verdict)")
    cm = pd.crosstab(table["truth"], table["verdict"]).reindex(
        index=list(TRUTHS), columns=[v.value for v in VERDICT_ORDER], fill_value=0
    )
    cm.index = [f"{t} ({EXPECTED_VERDICT[t]})" for t in cm.index]
    print(cm.to_string(), "\n")
    print("among families that look emergent (apparent emergence found):")
    ap_cm = pd.crosstab(table.loc[table["apparent"], "truth"], table.loc[table["apparent"], "verdict"]).reindex(
        index=list(TRUTHS), columns=[v.value for v in VERDICT_ORDER], fill_value=0
    )
    print(ap_cm.to_string(), "\n")
    print(rates(table).to_string(index=False), "\n")
    print("share right by number of models (families that look emergent; no_emergence: all):")
    table["right"] = table["verdict"] == table["truth"].map(EXPECTED_VERDICT)
    sel = table["apparent"] | (table["truth"] == "no_emergence")
    print(
        table[sel].pivot_table(index="truth", columns="n_models", values="right", aggfunc="mean").round(3).to_string()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
