"""`mirage demo --trained --quick`: train here, evaluate on held-out problems, analyse, report."""
import json

import pandas as pd
from typer.testing import CliRunner

from mirage.cli import app


def test_trained_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--trained", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    analysis = out / "analysis"
    assert result.stdout.strip().endswith(str(analysis / "report.html"))
    # the paragraph reports the measured verdict, whatever it is
    verdicts = pd.read_csv(analysis / "verdicts.csv")
    row = verdicts[verdicts.discontinuous_metric == "exact_match"].iloc[0]
    assert f"Verdict: {row['verdict']}" in result.stdout
    curves = pd.read_csv(analysis / "curves.csv")
    em = curves[curves.metric == "exact_match"].sort_values("scale")
    assert len(em) == 6 and (em["n_samples"] == 300).all()
    assert f"Exact match {em['value'].iloc[0]:.3f} -> {em['value'].iloc[-1]:.3f}" in result.stdout
    # evaluated problems are held-out problems, which training excluded
    heldout = {json.loads(l)["prompt"] for l in (out / "family" / "heldout.jsonl").read_text().splitlines()}
    records = pd.concat(pd.read_parquet(p) for p in (out / "store").rglob("*.parquet") if ".parts" not in p.parts)
    assert set(records["prompt"]) <= heldout
    for name in ("predictions.csv", "lengths.csv", "resolution.csv", "report.html"):
        assert (analysis / name).exists(), name
    assert pd.read_csv(analysis / "lengths.csv")["length"].nunique() >= 2
