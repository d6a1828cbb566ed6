"""The fast analysis (vectorised verdicts and emergence table, records streamed unit by unit) gives
what the unvectorised, unstreamed analysis gave, table by table and bit for bit.

The reference is the analysis as it was before the performance work, kept verbatim in
``tests/reference_analysis`` (one group, one curve, one model at a time, every record in memory).
The inputs mix what the fast path treats differently: record groups of generation and multiple
choice (verdicts decided group by group while their samples are in memory), score-table groups
(decided all at once), a group with both, shots present and missing, several numbers of models,
and Parquet record files read lazily row group by row group.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from reference_analysis import analyze as reference

from mirage.analysis.analyze import run_analysis
from mirage.api import analyze
from mirage.io.inputs import read_inputs
from mirage.schema.results import Inputs
from mirage.schema.settings import AnalysisSettings
from mirage.synthetic import TruthSpec, known_truth_records

TABLES = ("curves", "emergence", "insufficient", "verdicts", "evidence", "predictions", "prediction_fits", "lengths")


def _records(shots: bool = True) -> pa.Table:
    specs = [
        TruthSpec("smooth", n_models=6, n_samples=300, lengths=(1, 3, 5), family="gen", task="arith", seed=1),
        TruthSpec("jump", n_models=8, n_samples=200, lengths=(4,), family="gen2", task="jumpy", seed=2),
        TruthSpec("smooth_mc", n_models=5, n_samples=250, family="mc", task="choice", seed=3),
        TruthSpec("threshold", n_models=4, n_samples=150, lengths=(2, 6), family="mc2", task="thr", seed=4),
    ]
    tables = []
    for i, spec in enumerate(specs):
        t = known_truth_records(spec)
        if shots:
            t = t.append_column("shots", pa.array(np.full(t.num_rows, i % 2, dtype=np.int64)))
        tables.append(t)
    return pa.concat_tables(tables, promote_options="permissive")


def _scores(rng: np.random.Generator, records: pa.Table | None = None) -> pd.DataFrame:
    """Score-table curves: 3 families x 12 tasks x (acc, exact_match, ppl, brier_score), 4-8 models,
    smooth, broken and flat losses; with ``records``, a reported word perplexity and accuracy for
    the record group gen / arith (a group with both kinds of input)."""
    rows = []
    if records is not None:
        rec = records.select([c for c in ("family", "model", "scale", "task", "shots") if c in records.column_names])
        models = rec.to_pandas().drop_duplicates(["family", "model"])
        models = models[(models.family == "gen") & (models.task == "arith")].sort_values("scale")
        for i, r in enumerate(models.itertuples(index=False)):
            base = dict(family="gen", model=r.model, params=r.scale, task="arith")
            if "shots" in models.columns:
                base["shots"] = r.shots
            rows.append(dict(base, metric="word_perplexity", value=30.0 / (i + 1) ** 0.5, stderr=0.1))
            rows.append(dict(base, metric="acc", value=0.1 + 0.1 * i, n_samples=300))
    for fam in range(3):
        n_models = 4 + 2 * fam
        scales = np.geomspace(1e7, 1e10, n_models)
        for task in range(12):
            ce = 3.0 * (scales / 1e7) ** rng.uniform(-0.6, -0.2) + rng.uniform(0, 0.2)
            if task % 3 == 1:
                ce[n_models // 2 :] /= 4.0
            if task % 3 == 2:
                ce = np.full(n_models, 2.0) * np.exp(rng.normal(0, 0.01, n_models))
            L = 1 + task % 5
            acc = np.clip(np.exp(-L * ce) + rng.normal(0, 0.004, n_models), 0, 1)
            for m, s in enumerate(scales):
                base = dict(family=f"f{fam}", model=f"m{m}", params=s, task=f"t{task:02d}", shots=0)
                rows.append(dict(base, metric="acc", value=acc[m], n_samples=1000))
                rows.append(dict(base, metric="exact_match", value=acc[m] ** 1.2, stderr=0.01))
                rows.append(dict(base, metric="ppl", value=float(np.exp(ce[m])), stderr=0.02 * np.exp(ce[m])))
                rows.append(dict(base, metric="brier_score", value=1 - acc[m], stderr=0.01))
    frame = pd.DataFrame(rows)
    return frame


def _compare(new, ref) -> None:
    for name in TABLES:
        a, b = getattr(new, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True, obj=name)
    if ref.resolution is None or ref.resolution.empty:
        assert new.resolution is None or new.resolution.empty
    else:
        assert_frame_equal(new.resolution, ref.resolution, check_exact=True, obj="resolution")
    summary_new = json.loads(json.dumps({k: v for k, v in new.summary.items() if k != "figures"}, default=str))
    summary_ref = json.loads(json.dumps(ref.summary, default=str))
    assert summary_new == summary_ref


@pytest.mark.parametrize("shots", [True, False])
def test_records_and_scores_as_the_reference(tmp_path, shots):
    rng = np.random.default_rng(0)
    records = _records(shots)
    scores = _scores(rng, records)
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    rec_path = tmp_path / "records.parquet"
    pq.write_table(records, rec_path)
    inputs = read_inputs([str(path), str(rec_path)])
    settings = AnalysisSettings(bootstrap=200, seed=3)
    new = run_analysis(inputs, settings)
    ref = reference.run_analysis(dataclasses.replace(inputs, records=records_table(inputs)), settings)
    _compare(new, ref)
    # the samples come back in the records' order, as the whole-table computation gave them
    assert_frame_equal(new.samples, ref.samples, check_exact=True)
    assert new.summary["verdict_counts"] == ref.summary["verdict_counts"]
    assert len(new.verdicts) > 40 and new.verdicts["verdict"].nunique() >= 3


def records_table(inputs: Inputs) -> pa.Table:
    """The records of ``inputs`` as one table in memory (what the reference wants)."""
    rec = inputs.records
    return rec if isinstance(rec, pa.Table) else rec.to_table()


def test_streamed_files_and_samples_file_as_the_reference(tmp_path):
    """Records in several Parquet files of small row groups, read lazily, with the samples written
    unit by unit to samples.parquet: every table as the reference computed it in memory."""
    records = _records(True)
    src = tmp_path / "in"
    src.mkdir()
    # one file per family, rows shuffled within it, tiny row groups: units span many fragments
    for fam in ("gen", "gen2", "mc", "mc2"):
        part = records.filter(pa.compute.equal(records.column("family"), fam))
        order = np.random.default_rng(1).permutation(part.num_rows)
        pq.write_table(part.take(pa.array(order)), src / f"{fam}.parquet", row_group_size=97)
    inputs = read_inputs([str(src)])
    settings = AnalysisSettings(bootstrap=100, seed=7)
    new = analyze(inputs, tmp_path / "out", settings, max_figures=2)
    ref = reference.run_analysis(dataclasses.replace(inputs, records=records_table(inputs)), settings)
    _compare(new, ref)
    written = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    keys = ["family", "task", "model", "sample_id"]
    a = written.sort_values(keys, kind="stable").reset_index(drop=True)
    b = ref.samples.sort_values(keys, kind="stable").reset_index(drop=True)
    assert_frame_equal(a, b, check_exact=True)
    for name in ("curves.csv", "verdicts.csv", "evidence.csv", "emergence.csv"):
        assert (tmp_path / "out" / name).exists()


def test_score_tables_only_as_the_reference(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "scores.csv"
    _scores(rng).to_csv(path, index=False)
    inputs = read_inputs([str(path)])
    settings = AnalysisSettings()
    _compare(run_analysis(inputs, settings), reference.run_analysis(inputs, settings))
