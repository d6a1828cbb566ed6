"""The static reports (``--static``: PNG figures, for papers) are real pages (the analysis report
and the demo's three-predictions page): headless Chromium opens each, every figure has drawn
pixels, the full-page screenshot is not blank, and nothing is fetched from the network. The
interactive reports are checked in a driven browser by ``test_report_interactive.py``.

Chromium is the Debian package ``chromium`` (``.ci/run`` installs it when missing). Without it
the test skips with a clear message, unless ``CI`` is set: there a missing browser is a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mirage.cli import app

pytestmark = pytest.mark.slow  # headless chromium renders each page (~45 s a page)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # any host name resolves to nothing, so a stray request fails instead of leaving the machine
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        message = "headless Chromium not found: install the Debian package 'chromium' (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _story_page(root: Path) -> Path:
    """The three-predictions page of ``mirage demo`` (mirage.analysis.story, mirage.report.story), from a synthetic family so the
    browser check does not wait for a training run."""
    import numpy as np
    import pyarrow as pa

    from mirage import AnalysisSettings, run_analysis
    from mirage.analysis.story import story_tables
    from mirage.io.inputs import read_inputs
    from mirage.io.outputs import write_story
    from mirage.io.records import write_records
    from mirage.synthetic import synthetic_records

    scales = np.geomspace(1e5, 1e8, 8)
    p = dict(zip(scales, np.linspace(0.05, 0.995, 8)))
    tables = [
        synthetic_records(p, n_samples=200, lengths=(1, 2, 3, 4, 5, 6), family="f", task="arithmetic", seed=1),
        synthetic_records(
            dict(sorted(p.items())[:4]),
            n_samples=2000,
            lengths=(1, 2, 3, 4, 5, 6),
            family="f",
            task="arithmetic_10x",
            seed=2,
        ),
    ]
    write_records(pa.concat_tables(tables), root / "store" / "records.parquet")
    result = run_analysis(read_inputs([root / "store"]), AnalysisSettings(seed=0, bootstrap=100))
    write_story(story_tables(result), root / "report.html", analysis_link=None, static=True)
    return root / "report.html"


@pytest.fixture(scope="module", params=["analysis", "story"])
def report(request, tmp_path_factory, pythia_table) -> Path:
    if request.param == "story":
        return _story_page(tmp_path_factory.mktemp("story"))
    out = tmp_path_factory.mktemp("browser") / "analysis"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(pythia_table),
            "--filter",
            "task=lambada_openai",
            "--out",
            str(out),
            "--bootstrap",
            "50",
            "--quiet",
            "--static",
        ],
    )
    assert result.exit_code == 0, result.stderr
    return out / "report.html"


def _decode_png(data_uri: str) -> np.ndarray:
    import matplotlib.image as mpimg

    assert data_uri.startswith("data:image/png;base64,")
    return mpimg.imread(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])), format="png")


def _ink_fraction(rgb: np.ndarray) -> float:
    """Share of pixels that differ visibly from the image's most common colour (its background)."""
    flat = (np.asarray(rgb)[..., :3].reshape(-1, 3) * 255).round().astype(np.int16)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return float((np.abs(flat - background).max(axis=1) > 24).mean())


def _page_requests(net_log: Path) -> list[str]:
    """URLs the *page* asked the network stack for, from a ``--log-net-log`` JSON file.

    The browser's own background requests (time service, component updater, account checks)
    carry no page in their network isolation key; requests made by a ``file://`` page carry
    ``file://`` there. Only the latter say something about report.html.
    """
    text = net_log.read_text(errors="replace").rstrip()
    if not text.endswith("}"):  # a log cut off mid-event: close it
        text = text.rstrip(",") + "]}"
    log = json.loads(text)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log.get("events", [])
        if e.get("type") == start_job
        and str(e.get("params", {}).get("network_isolation_key", "")).startswith("file://")
    ]


def _render(html_file: Path, workdir: Path, height: int) -> tuple[Path, list[str]]:
    """Screenshot of ``html_file`` in headless Chromium and the network requests the page made."""
    chromium = _chromium()
    workdir.mkdir(parents=True, exist_ok=True)
    shot, net_log = workdir / "page.png", workdir / "netlog.json"
    cmd = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={workdir / 'profile'}",
        f"--log-net-log={net_log}",
        f"--window-size=1200,{height}",
        "--virtual-time-budget=3000",
        f"--screenshot={shot}",
        html_file.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    assert net_log.is_file(), "chromium wrote no net log"
    return shot, _page_requests(net_log)


def test_every_embedded_figure_has_drawn_pixels(report):
    page = report.read_text()
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", page)
    assert srcs, "the report has no figures"
    for i, src in enumerate(srcs):
        image = _decode_png(src)
        assert image.shape[0] > 50 and image.shape[1] > 50, f"figure {i} is {image.shape[:2]} pixels"
        assert _ink_fraction(image) > 0.01, f"figure {i} is blank"


def test_report_references_no_network_resource(report):
    page = report.read_text()
    # attributes and CSS that would make a browser fetch something
    fetches = re.findall(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    fetches += re.findall(r"url\(\s*[\"']?\s*(?:https?:)?//", page, re.I) + re.findall(r"@import", page, re.I)
    assert not fetches, f"report.html would fetch from the network: {fetches[:3]}"


def test_chromium_renders_report_without_network(report, tmp_path):
    import matplotlib.image as mpimg

    shot, requests = _render(report, tmp_path / "report", height=4000)
    page = mpimg.imread(shot)
    assert page.shape[0] >= 1000 and page.shape[1] >= 1000
    assert _ink_fraction(page) > 0.02, "the screenshot of report.html is blank"
    # the figures are drawn in the page too: many rows of the screenshot carry dozens of
    # colours, which text on white never does (a plot's lines, bands and markers do)
    rgb = (page[..., :3] * 255).round().astype(np.uint8)
    colourful_rows = sum(len(np.unique(row, axis=0)) > 40 for row in rgb)
    assert colourful_rows > 100, f"only {colourful_rows} rows of the screenshot look like a drawn figure"
    assert not requests, f"report.html made network requests: {requests[:5]}"


def test_net_log_check_catches_a_page_that_fetches(tmp_path):
    """Positive control: the same check flags a page with one remote image and one stylesheet."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.example.com/s.css"></head>'
        '<body><h1>control</h1><img src="http://example.invalid/a.png"></body></html>'
    )
    _, requests = _render(page, tmp_path / "control", height=600)
    assert "http://example.invalid/a.png" in requests and "https://cdn.example.com/s.css" in requests
