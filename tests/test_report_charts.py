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


def test_point_trace_keeps_the_order_of_sort_values() -> None:
    # the trace reads its columns in frame.sort_values(x) order without building the sorted
    # frame: ties and a missing x must come out as pandas orders them
    from mirage.report.interactive import point_trace

    frame = pd.DataFrame(
        {
            "model": ["m3", "m1", "m2", "m4", "m5"],
            "scale": [3e9, 1e8, 1e8, np.nan, 5e7],
            "value": [0.3, 0.1, 0.2, 0.4, 0.05],
            "ci_low": [0.25, 0.05, 0.15, 0.35, 0.0],
            "ci_high": [0.35, 0.15, 0.25, 0.45, 0.1],
            "n_samples": [100.0, 100.0, 100.0, 100.0, 100.0],
        },
        index=[10, 11, 12, 13, 14],
    )
    for data in (frame, frame.dropna()):
        trace = point_trace(data, name="f", colour="#000")
        expected = data.sort_values("scale")
        assert [c[0] for c in trace["customdata"]] == expected["model"].tolist()
        assert trace["y"] == expected["value"].tolist()
