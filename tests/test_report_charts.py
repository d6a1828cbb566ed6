"""The task charts of ``mirage analyze`` are built as plain figure dicts (for speed): Plotly's own
schema must still accept every property, and the panels must say what the curves are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mirage.report.interactive import figure_json, metric_panels


def _curves() -> pd.DataFrame:
    rows = []
    scales = np.geomspace(1e7, 1e10, 4)
    for fam in ("a", "b"):
        for i, s in enumerate(scales):
            for metric, kind, higher, value in (
                ("exact_match", "discontinuous", True, 0.1 * i),
                ("ppl", "continuous", False, 10.0 / (i + 1)),
                ("brier_score", "continuous", False, 0.5 - 0.1 * i),
            ):
                rows.append(
                    dict(
                        family=fam,
                        model=f"{fam}{i}",
                        scale=s,
                        metric=metric,
                        metric_kind=kind,
                        higher_is_better=higher,
                        value=value,
                        ci_low=max(value - 0.01, 0.0),
                        ci_high=value + 0.01,
                        n_samples=100,
                    )
                )
    return pd.DataFrame(rows)


def _predictions() -> pd.DataFrame:
    scales = np.geomspace(1e7, 1e10, 5)
    return pd.DataFrame(
        dict(
            family="a",
            scale=scales,
            predicted_exact_match=np.linspace(0, 0.3, 5),
            predicted_low=np.linspace(0, 0.25, 5),
            predicted_high=np.linspace(0.05, 0.35, 5),
            source="ppl",
        )
    )


def test_metric_panels_is_a_valid_plotly_figure_with_one_panel_per_metric() -> None:
    fig = metric_panels(_curves(), floors={"exact_match": [0.25]}, predictions=_predictions(), title="t")
    checked = go.Figure(fig)  # raises ValueError on any property Plotly's schema does not know
    data = checked.to_plotly_json()["data"]
    # 2 families x 3 metrics, and family a's predicted band and line on the exact-match panel
    assert len(data) == 2 * 3 + 2
    em_panel = [t for t in data if t.get("xaxis", "x") == "x"]
    assert {t["name"] for t in em_panel} == {"a", "b", "a predicted", "a: predicted from ppl"}
    layout = checked.layout
    # discontinuous first, then the continuous metrics by name: brier_score (linear), ppl (log)
    assert layout.yaxis.range is not None and layout.yaxis2.type is None and layout.yaxis3.type == "log"
    assert all(getattr(layout, f"xaxis{s}").type == "log" for s in ("", "2", "3"))
    assert [s.y0 for s in layout.shapes] == [0.25] and layout.shapes[0].xref == "x domain"
    # each family in the legend once
    assert sorted(t["name"] for t in data if t.get("showlegend", True)) == ["a", "b"]
    assert "</" not in figure_json(fig)
