"""Self-contained HTML: one page, inline CSS, no external resources, so ``report.html`` opens
anywhere with no network access."""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f4f4f6}
td:last-child{font-size:.85em;color:#444;max-width:28em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:600}.muted{color:#666}.box{background:#f7f7f9;border-left:4px solid #888;
padding:.6em 1em;margin:1em 0}img{max-width:100%;height:auto}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
"""


def html_document(title: str, body_html: str, *, css: str = "", scripts: Sequence[str] = ()) -> str:
    """A complete, self-contained HTML page: inline CSS (``css`` added to the page's own) and
    inline ``scripts`` at the end of the body; no external resources."""
    inline = "".join(f"<script>{s}</script>\n" for s in scripts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}{css}</style></head>"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body_html}\n{inline}</body></html>\n"
    )


def anchor_id(prefix: str, *parts: Any) -> str:
    """A stable element id for a figure or row: readable prefix plus a hash of ``parts``.

    >>> anchor_id("fig", "lambada", 0)
    'fig-fb560fa19c'
    """
    digest = hashlib.sha1("\x00".join(map(str, parts)).encode("utf-8")).hexdigest()[:10]
    return f"{prefix}-{digest}"


def table_html(frame: pd.DataFrame, max_rows: int = 60, float_format: str = "{:.4g}") -> str:
    """A small HTML table; numbers right-aligned, long tables truncated with a note."""
    shown = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for _, row in shown.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                txt = (
                    "inf"
                    if v == math.inf
                    else "-inf"
                    if v == -math.inf
                    else ("" if pd.isna(v) else float_format.format(v))
                )
                cells.append(f'<td class="num">{txt}</td>')
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{v}</td>')
            else:
                missing = v is None or (np.ndim(v) == 0 and pd.isna(v))
                cells.append(f"<td>{html.escape('' if missing else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = "" if len(frame) <= max_rows else f'<p class="muted">{len(frame) - max_rows} more rows in the CSV file.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
