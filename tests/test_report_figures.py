"""Static figures stay readable from 1 to 50 families, measured from the rendered figure.

matplotlib's window extents (in display pixels, after a draw) say where each legend, each axes
and its tick labels, axis labels and title ended up. A legend must not overlap any panel or its
labels; a figure with more families than one panel can tell apart becomes small multiples, in
which no colour repeats within a panel; a rate's panel shows its whole range with the floor marked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from report_tables import many_families_table

from mirage.report.figures import plot_task
from mirage.report.png import close, encode_png
from mirage.report.style import GROUP_SIZE


def _curves(n_families: int) -> pd.DataFrame:
    """One task's curves of ``n_families`` families, as ``mirage analyze`` computes them."""
    from mirage import AnalysisSettings, inputs_from_frame, run_analysis

    table = many_families_table(n_families, n_tasks=5, seed=n_families)
    table = table[table["task"] == "mmlu"]
    result = run_analysis(inputs_from_frame(table), AnalysisSettings(bootstrap=0))
    return result.curves


def _boxes(fig: Figure) -> tuple[list[Bbox], list[Bbox]]:
    """(legend boxes, boxes of every visible panel with its tick labels, axis labels and title)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legends = [leg.get_window_extent(renderer) for leg in fig.legends]
    panels = []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            legends.append(leg.get_window_extent(renderer))
        if ax.axison:  # a legend's own (invisible) axes is not a panel
            if leg is not None:
                leg.set_visible(False)  # the panel's box without the legend inside it
            panels.append(ax.get_tightbbox(renderer))
            if leg is not None:
                leg.set_visible(True)
    return legends, panels


def legend_overlaps(fig: Figure, tolerance: float = 1.0) -> list[str]:
    """Every (legend, panel) pair whose boxes overlap by more than ``tolerance`` pixels."""
    legends, panels = _boxes(fig)
    out = []
    for i, leg in enumerate(legends):
        for j, panel in enumerate(panels):
            w = min(leg.x1, panel.x1) - max(leg.x0, panel.x0)
            h = min(leg.y1, panel.y1) - max(leg.y0, panel.y0)
            if w > tolerance and h > tolerance:
                out.append(f"legend {i} overlaps panel {j} by {w:.0f} x {h:.0f} px")
    return out


def _panel_colours(fig: Figure) -> list[list[Any]]:
    """The line colours of each visible panel (one per family curve drawn with markers)."""
    return [
        [line.get_color() for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
        for ax in fig.axes
        if ax.axison
    ]


@pytest.mark.parametrize("n_families", [1, 10, 40])
def test_no_legend_overlaps_the_panels(n_families):
    fig = plot_task(_curves(n_families), f"mmlu ({n_families} families)", floors={"acc": [0.25]})
    try:
        legends, panels = _boxes(fig)
        assert legends, "the figure has no legend"
        assert len(panels) >= 2
        problems = legend_overlaps(fig)
        assert not problems, "\n".join(problems)
        # every family is named in a legend, and within a panel no two families share a colour
        names = {t.get_text() for leg in fig.axes if leg.get_legend() for t in leg.get_legend().get_texts()}
        assert len([n for n in names if not n.startswith(("predicted", "floor"))]) == n_families
        for colours in _panel_colours(fig):
            assert len(colours) == len(set(colours)), "two families of one panel share a colour"
            assert len(colours) <= GROUP_SIZE
        if n_families > GROUP_SIZE:  # small multiples: a row of panels per group of families
            assert len(panels) == 2 * int(np.ceil(n_families / GROUP_SIZE))
        png = encode_png(fig)
        assert len(png) > 10_000
    finally:
        close(fig)


def test_the_overlap_check_catches_a_legend_over_the_axes():
    """Positive control: a legend drawn inside the panel (the old layout) is reported."""
    from mirage.report.png import pyplot

    fig, ax = pyplot().subplots(figsize=(3, 2))
    for i in range(8):
        ax.plot([1, 2, 3], [i, i + 1, i + 2], label=f"family {i}")
    ax.legend(loc="center")
    try:
        assert legend_overlaps(fig)
    finally:
        close(fig)


def test_rates_show_their_whole_range_with_the_floor():
    fig = plot_task(_curves(3), "mmlu", floors={"acc": [0.25]})
    try:
        acc = next(ax for ax in fig.axes if ax.axison and ax.get_title().startswith("acc"))
        low, high = acc.get_ylim()
        assert low <= 0.0 and high >= 1.0, (low, high)
        assert any(line.get_linestyle() == ":" and np.allclose(line.get_ydata(), 0.25) for line in acc.get_lines()), (
            "the chance level is not marked"
        )
    finally:
        close(fig)


def _story_tables():
    import pyarrow as pa

    from mirage import AnalysisSettings, run_analysis, story_tables
    from mirage.schema.results import Inputs
    from mirage.synthetic import synthetic_records

    scales = np.geomspace(1e5, 1e8, 8)
    p = dict(zip(scales, np.linspace(0.05, 0.995, 8)))
    records = pa.concat_tables(
        [
            synthetic_records(p, n_samples=100, lengths=(1, 2, 3, 4, 5), family="f", task="arithmetic", seed=1),
            synthetic_records(
                dict(sorted(p.items())[:4]), n_samples=400, lengths=(5,), family="f", task="arithmetic_10x", seed=2
            ),
        ]
    )
    result = run_analysis(Inputs(scores=None, records=records), AnalysisSettings(bootstrap=50))
    return story_tables(result)


def _forecast_result() -> Any:
    """A forecast of two families (two panels, held-out models and a requested scale)."""
    import pyarrow as pa

    from mirage import ForecastSettings, run_forecast
    from mirage.schema.results import Inputs
    from mirage.synthetic import TruthSpec, known_truth_records

    records = pa.concat_tables(
        [
            known_truth_records(
                TruthSpec("smooth", n_models=8, decades=4, lengths=(5,), n_samples=200, seed=s, family=name)
            )
            for s, name in ((1, "a family with a long name"), (2, "b"))
        ]
    )
    return run_forecast(Inputs(None, records), ForecastSettings(backtest=2, bootstrap=30, to=(1e12,)))


def _static_figures() -> list[tuple[str, Figure]]:
    from mirage import TheorySettings, run_theory
    from mirage.report.forecast import forecast_figure
    from mirage.report.story import story_figures
    from mirage.report.theory import theory_figure

    figures = [("theory", theory_figure(run_theory(TheorySettings())))]
    figures += [(f"story {k}", f) for k, f in story_figures(_story_tables()).items()]
    figures.append(("forecast", forecast_figure(_forecast_result())))
    return figures


def test_no_legend_overlaps_a_panel_in_the_other_static_figures():
    """The theory's Figure 2, the demo's three predictions and the forecast's panels: every legend
    beside or below its panels."""
    figures = _static_figures()
    try:
        assert len(figures) == 5
        for name, fig in figures:
            assert _boxes(fig)[0], f"{name} has no legend"
            problems = legend_overlaps(fig)
            assert not problems, f"{name}: " + "; ".join(problems)
    finally:
        for _name, fig in figures:
            close(fig)


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("huge", ["values", "scales"])
def test_values_near_the_largest_float_are_drawn(tmp_path, static, huge):
    """Finite values (or scales) near 1.7e308 (issue 12): analyze and meta exit 0 and write every
    figure; the panels draw them divided by a power of ten and say so, the tables keep them whole."""
    from typer.testing import CliRunner

    from mirage.cli import app

    if huge == "values":  # a sharp, apparently emergent curve beside a smooth one, both near 1.7e308
        scales = [10.0 ** (7 + i) for i in range(6)]
        sharp = [1e306, 1.1e306, 1.2e306, 1.3e306, 1.7e308, 1.75e308]
        smooth = [1.7e308 - i * 1e307 for i in range(6)]
    else:  # ordinary values at scales up to the largest float
        scales = [1e303, 1e304, 1e305, 1e306, 1e307, 1.7e308]
        sharp = [0.01, 0.02, 0.02, 0.03, 0.7, 0.9]
        smooth = [3.0 - 0.3 * i for i in range(6)]
    rows = [
        dict(family=fam, model=f"{fam}{i}", params=scales[i], task="t", metric=metric, value=value)
        for fam in ("f", "g")
        for i in range(6)
        for metric, value in (("exact_match", sharp[i]), ("token_edit_distance", smooth[i]))
    ]
    table = tmp_path / "huge.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    extra = ["--static"] if static else []
    for command, figures in (("analyze", 1), ("meta", 2)):
        out = tmp_path / command
        result = CliRunner().invoke(app, [command, str(table), "--out", str(out), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        assert len(list((out / "figures").glob("*.png"))) == figures, command
        assert (out / "report.html").stat().st_size > 0
    curves = pd.read_csv(tmp_path / "analyze" / "curves.csv")
    column = "value" if huge == "values" else "scale"
    assert curves[column].max() == pytest.approx(1.75e308 if huge == "values" else 1.7e308)  # kept whole
