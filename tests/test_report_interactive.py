"""The interactive report in a real browser: headless Chromium (the system's, Debian package
``chromium``) driven by Playwright for Python.

On a 1-family and a 25-family report written by ``mirage analyze`` from realistic score tables
(:mod:`report_tables`): the page asks nothing of the network; hovering a point shows its model,
value, interval and n; clicking a family in a chart's legend hides that family's traces; the
search box filters charts and verdict rows; a verdict row links to its figure. Full-page
screenshots of both reports are saved under the test's tmp directory (their paths are printed).
The 25-family page stays under :data:`MAX_PAGE_BYTES`.

Without Chromium or Playwright the tests skip with a clear message, unless ``CI`` is set: there a
missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_tables import many_families_table
from typer.testing import CliRunner

from mirage.cli import app

# the 25-family page: plotly.js (4.8 MB, inlined once) and the charts and tables (under 1 MB)
MAX_PAGE_BYTES = 6_000_000


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        _missing("headless Chromium not found: install the Debian package 'chromium' (.ci/run does)")
    return str(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install 'mirage[test]')")
    chromium = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND"],  # a stray request fails
        )
        try:
            yield b
        finally:
            b.close()


def _report(root: Path, n_families: int) -> Path:
    table = root / "scores.csv"
    many_families_table(n_families).to_csv(table, index=False)
    out = root / "out"
    result = CliRunner().invoke(app, ["analyze", str(table), "--out", str(out), "--bootstrap", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    return out / "report.html"


@pytest.fixture(scope="module")
def report25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(tmp_path_factory.mktemp("report25"), 25)


@pytest.fixture(scope="module")
def report1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(tmp_path_factory.mktemp("report1"), 1)


class Page:
    """A report open in the browser, with every request it makes recorded (and aborted if it
    would leave the file system)."""

    def __init__(self, browser: Any, path: Path):
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort(),
        )
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def chart(self, index: int = 0) -> Any:
        """The ``index``-th chart, scrolled to and drawn."""
        fig = self.page.locator("figure.chart").nth(index)
        fig.scroll_into_view_if_needed()
        fig.locator(".plot.js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=15_000)
        return fig

    def network(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file://", "data:"))]


@pytest.fixture()
def page25(browser: Any, report25: Path) -> Iterator[Page]:
    p = Page(browser, report25)
    yield p
    p.page.close()


def test_no_network_request(page25: Page):
    page25.chart(0)
    page25.chart(3)
    assert not page25.network(), f"the report asked the network for {page25.network()[:5]}"
    assert page25.requests[0].startswith("file://")


def test_hover_shows_model_value_interval_and_n(page25: Page):
    fig = page25.chart(0)
    point = fig.locator(".scatterlayer .trace .points path").first
    point.hover(force=True)
    tip = fig.locator(".hoverlayer .hovertext")
    tip.first.wait_for(timeout=10_000)
    text = tip.first.text_content() or ""
    for word in ("model", "scale", "value", "interval", "n "):
        assert word in text, f"tooltip {text!r} lacks {word!r}"
    assert "[" in text and "]" in text, f"tooltip {text!r} shows no interval"


def test_clicking_a_legend_entry_hides_that_family(page25: Page):
    fig = page25.chart(0)
    entry = fig.locator(".legend .traces").first
    family = (entry.locator(".legendtext").text_content() or "").strip()
    assert family
    drawn_before = fig.locator(".scatterlayer .trace").count()
    entry.click()
    page25.page.wait_for_timeout(500)
    visible = fig.locator(".plot").evaluate(
        "(div, fam) => div.data.filter(t => t.legendgroup === fam).map(t => t.visible)", family
    )
    assert visible and all(v == "legendonly" for v in visible), visible
    assert fig.locator(".scatterlayer .trace").count() < drawn_before
    entry.click()  # and back
    page25.page.wait_for_timeout(500)
    visible = fig.locator(".plot").evaluate(
        "(div, fam) => div.data.filter(t => t.legendgroup === fam).map(t => t.visible)", family
    )
    assert all(v is True for v in visible), visible


def test_search_box_filters_charts_and_verdicts(page25: Page):
    page = page25.page
    charts = page.locator("figure.chart")
    n_charts = charts.count()
    assert n_charts == 7
    rows = page.locator("tr[data-search]")
    n_rows = rows.count()
    box = page.locator("#search")

    box.fill("mmlu")  # a task: only its chart, and only its verdict rows
    page.wait_for_timeout(300)
    shown = [charts.nth(i).get_attribute("data-task") for i in range(n_charts) if charts.nth(i).is_visible()]
    assert shown == ["mmlu"], shown
    texts = [rows.nth(i).get_attribute("data-search") or "" for i in range(n_rows) if rows.nth(i).is_visible()]
    assert texts and all("mmlu" in t for t in texts)

    box.fill("llama")  # families: every chart with them shows only them
    page.wait_for_timeout(300)
    fig = page25.chart(0)
    groups = fig.locator(".plot").evaluate(
        "div => div.data.filter(t => t.visible !== 'legendonly').map(t => t.legendgroup)"
    )
    assert groups and all("llama" in g.lower() for g in groups), groups
    texts = [rows.nth(i).get_attribute("data-search") or "" for i in range(n_rows) if rows.nth(i).is_visible()]
    assert texts and all("llama" in t.lower() for t in texts)
    # the collapsed "insufficient evidence" rows open when the search finds some
    status = page.locator("#search-status").text_content() or ""
    assert "of 7 figures" in status

    box.fill("no such family or task")
    page.wait_for_timeout(300)
    assert not any(charts.nth(i).is_visible() for i in range(n_charts))
    assert not any(rows.nth(i).is_visible() for i in range(n_rows))

    box.fill("")
    page.wait_for_timeout(300)
    assert all(charts.nth(i).is_visible() for i in range(n_charts))
    fig = page25.chart(0)
    hidden = fig.locator(".plot").evaluate("div => div.data.filter(t => t.visible === 'legendonly').length")
    assert hidden == 0


def test_verdicts_lead_and_link_to_their_figures(page25: Page, report25: Path):
    page = page25.page
    headings = [h.strip() for h in page.locator("h3, details.collapsed > summary").all_text_contents()]
    assert headings[0].startswith("Decided:")
    assert headings[1].startswith("No apparent emergence:")
    assert headings[2].startswith("Insufficient evidence:")
    assert page.locator("details.collapsed").get_attribute("open") is None  # collapsed
    # the decided rows come in the order of verdicts.csv
    verdicts = [json.loads(json.dumps(v)) for v in page.locator("tr[data-search] td.verdict").all_text_contents()]
    import pandas as pd

    csv = pd.read_csv(report25.parent / "verdicts.csv")
    assert verdicts == list(csv["verdict"])
    link = page.locator("tr[data-search] a[href^='#fig-']").first
    target = (link.get_attribute("href") or "")[1:]
    link.click()
    chart = page.locator(f"#{target}")
    chart.locator(".plot.js-plotly-plot").wait_for(timeout=15_000)
    assert chart.is_visible()
    # every verdict row opens the numbers it was decided on: its verdicts.csv and evidence.csv lines
    details = page.locator("tr[data-search] details").first
    details.locator("summary").click()
    text = details.text_content() or ""
    assert "verdicts.csv" in text and "evidence.csv" in text and "break_p_value" in text


def test_screenshots_and_page_size(browser: Any, report1: Path, report25: Path, tmp_path: Path):
    size = report25.stat().st_size
    assert size < MAX_PAGE_BYTES, f"the 25-family report is {size:,} bytes"
    for name, report in (("report-1-family", report1), ("report-25-families", report25)):
        p = Page(browser, report)
        for i in range(p.page.locator("figure.chart").count()):
            p.chart(i)
        shot = tmp_path / f"{name}.png"
        p.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        assert not p.network()
        p.page.close()
        print(f"screenshot: {shot}")


def test_forecast_page_draws_and_tooltips_without_network(browser: Any, tmp_path: Path):
    """``mirage forecast``'s page: its chart draws with no network request, a model's tooltip shows
    its model, scale, value, interval and n, and the search box hides a forecast of another task."""
    from mirage import write_records
    from mirage.synthetic import TruthSpec, known_truth_records

    records = tmp_path / "records.parquet"
    write_records(
        known_truth_records(TruthSpec("smooth", n_models=8, decades=4, lengths=(5,), n_samples=300, seed=1)), records
    )
    out = tmp_path / "fc"
    args = ["forecast", str(records), "--backtest", "2", "--bootstrap", "40", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    p = Page(browser, out / "report.html")
    try:
        fig = p.chart(0)
        fig.locator(".scatterlayer .trace .points path").first.hover(force=True)
        tip = fig.locator(".hoverlayer .hovertext")
        tip.first.wait_for(timeout=10_000)
        text = tip.first.text_content() or ""
        for word in ("model", "scale", "value", "interval", "n "):
            assert word in text, f"tooltip {text!r} lacks {word!r}"
        assert not p.network(), p.network()[:5]
        p.page.fill("#search", "no such task")
        p.page.wait_for_timeout(300)
        assert not fig.is_visible()
        p.page.fill("#search", "smooth")  # the family
        p.page.wait_for_timeout(300)
        assert fig.is_visible()
    finally:
        p.page.close()
