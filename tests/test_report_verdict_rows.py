"""The analysis page's verdict rows: each opens its own evidence.csv tests, and a page of very many
verdicts lists a bounded number per section (the rest counted, left to verdicts.csv)."""

import pandas as pd

from mirage.report.analysis import evidence_by_group, verdict_table


def _verdicts(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": ["f"] * n,
            "task": [f"t{i}" for i in range(n)],
            "shots": pd.array([0] * (n - 1) + [None], dtype="Int64"),
            "verdict": ["no apparent emergence"] * n,
            "discontinuous_metric": ["acc"] * n,
            "continuous_metric": ["ppl"] * n,
            "reason": ["flat"] * n,
        }
    )


def _evidence(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": ["f"] * n,
            "task": [f"t{i}" for i in range(n)],
            "shots": pd.array([0] * (n - 1) + [None], dtype="Int64"),
            "discontinuous_metric": ["acc"] * n,
            "test": ["apparent_emergence"] * n,
            "metric": ["acc"] * n,
            "statistic": [float(i) for i in range(n)],
            "p_value": [0.5] * n,
            "outcome": ["no"] * n,
            "detail": [f"detail-of-t{i}" for i in range(n)],
        }
    )


def test_each_verdict_row_shows_only_its_own_evidence():
    page = verdict_table(_verdicts(3), evidence_by_group(_evidence(3)), anchors=set())
    rows = page.split('<tr id="')[1:]
    assert len(rows) == 3
    for i, row in enumerate(rows):  # the last one has no shots: matched as missing, not as 0
        assert f"detail-of-t{i}" in row
        assert sum(f"detail-of-t{j}" in row for j in range(3)) == 1


def test_a_page_of_many_verdicts_lists_a_bounded_number_and_counts_the_rest():
    page = verdict_table(_verdicts(5), evidence_by_group(None), anchors=set(), max_rows=2)
    assert page.count('<tr id="') == 2
    assert "3 more rows of this kind are in verdicts.csv" in page
    full = verdict_table(_verdicts(5), {}, anchors=set(), max_rows=5)
    assert full.count('<tr id="') == 5 and "more rows" not in full
