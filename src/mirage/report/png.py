"""The one PNG encoder: every figure mirage writes or embeds is rendered here.

matplotlib draws on the Agg backend (no display needed); a figure is encoded once and the same
bytes go to ``figures/`` and into the self-contained report as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import io
from types import ModuleType

import matplotlib

matplotlib.use("Agg", force=True)  # before pyplot is imported: no display is ever needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend."""
    return plt


def encode_png(fig: Figure, *, dpi: int = 110, tight: bool = True) -> bytes:
    """The figure as PNG bytes (``tight``: cropped to what is drawn)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI, for a page that needs no network."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_to_data_uri(fig: Figure, dpi: int = 110) -> str:
    """Render a figure straight to a ``data:`` URI (cropped)."""
    return data_uri(encode_png(fig, dpi=dpi))


def close(fig: Figure) -> None:
    """Free a figure's memory (pyplot keeps every open figure)."""
    plt.close(fig)
