"""How curves look, shared by the static (matplotlib) and interactive (Plotly) figures: the order of
a task's metric panels, colours and markers that stay distinct for 1 to 50 families, and the
natural y range of a metric with its floor.

>>> natural_range("discontinuous", [0.0, 0.31, 0.9])
(0.0, 1.0)
>>> natural_range("discontinuous", [12.5, 80.0]) # BIG-bench reports percentages
(0.0, 100.0)
>>> natural_range("linear", [-3.2, -0.4]) is None  # a log-probability: the data decide
True
>>> [len(g) for g in family_groups([f"f{i}" for i in range(25)])]
[9, 8, 8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..schema.vocab import SHARP_KINDS, MetricKind

KIND_LABEL = {
    MetricKind.DISCONTINUOUS.value: "discontinuous",
    MetricKind.NONLINEAR.value: "nonlinear",
    MetricKind.LINEAR.value: "continuous (linear)",
    MetricKind.UNKNOWN.value: "unknown kind",
}
KIND_ORDER = {
    MetricKind.DISCONTINUOUS.value: 0,
    MetricKind.NONLINEAR.value: 1,
    MetricKind.LINEAR.value: 2,
    MetricKind.UNKNOWN.value: 3,
}
DISCONTINUOUS_TITLE = "#b3261e"  # the colour of a discontinuous metric's panel title

# Most families one static panel shows: past it a figure becomes small multiples, one row of
# panels per group of families, so no two curves of a panel share a colour.
GROUP_SIZE = 10
# matplotlib's tab10: ten colours that stay apart, in print too; a group never needs more
TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class Style:
    """How one family is drawn: a colour and a marker (matplotlib's marker names)."""

    colour: str
    marker: str


def family_groups(families: Sequence[str], size: int = GROUP_SIZE) -> list[list[str]]:
    """``families`` in groups of at most ``size``, as even as possible (25 -> 9, 8, 8)."""
    if not families:
        return []
    n_groups = math.ceil(len(families) / size)
    base, extra = divmod(len(families), n_groups)
    out, start = [], 0
    for g in range(n_groups):
        end = start + base + (1 if g < extra else 0)
        out.append(list(families[start:end]))
        start = end
    return out


def group_styles(families: Sequence[str]) -> dict[str, Style]:
    """Colour and marker of each family of one group (at most :data:`GROUP_SIZE`): all distinct."""
    return {f: Style(TAB10[i % len(TAB10)], MARKERS[i % len(MARKERS)]) for i, f in enumerate(families)}


def ordered_metrics(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(metric, kind) pairs in panel order: discontinuous first, then nonlinear, then continuous."""
    unique = dict.fromkeys((str(m), str(k)) for m, k in pairs)
    return sorted(unique, key=lambda mk: (KIND_ORDER.get(mk[1], 9), mk[0]))


def natural_range(kind: str, values: Iterable[float]) -> tuple[float, float] | None:
    """The y range a metric's panel shows, or None to let the data decide.

    A discontinuous or nonlinear metric is a rate: its whole range (0-1, or 0-100 when reported as
    a percentage), so a change of 0.002 looks like one. Continuous metrics (log-probabilities,
    edit distances, perplexities) have no fixed range.
    """
    if kind not in SHARP_KINDS:
        return None
    finite = np.asarray([v for v in values if v is not None], dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size or finite.min() < 0:
        return None
    if finite.max() <= 1.0:
        return (0.0, 1.0)
    if finite.max() <= 100.0:
        return (0.0, 100.0)
    return None


def padded(lo: float, hi: float, share: float = 0.04) -> tuple[float, float]:
    """``(lo, hi)`` widened by ``share`` of its span on each side, so points on the edge show."""
    pad = (hi - lo) * share
    return lo - pad, hi + pad


# past this magnitude matplotlib's axis arithmetic overflows (limits plus a margin, tick ranges,
# 10 ** log10 of a limit): values as large as that are drawn divided by a power of ten
HUGE = 1e300


def display_factor(values: Iterable[float]) -> float:
    """1, or the power of ten that values beyond :data:`HUGE` are divided by where they are drawn
    (the axis label says so); the tables keep the values as they are.

    >>> display_factor([0.5, 3.0]), display_factor([1.7e308, -2e307])
    (1.0, 1e+308)
    """
    v = np.asarray(list(values), dtype=float)
    v = np.abs(v[np.isfinite(v)])
    if not v.size or float(v.max()) <= HUGE:
        return 1.0
    return float(10.0 ** math.floor(math.log10(float(v.max()))))


def factor_label(factor: float) -> str:
    """What an axis label adds when its values are drawn divided by ``factor``.

    >>> factor_label(1.0), factor_label(1e308)
    ('', ' (× 1e308)')
    """
    return "" if factor == 1.0 else f" (× 1e{round(math.log10(factor))})"


def log_limits(lo: float, hi: float) -> tuple[float, float]:
    """``10 ** lo, 10 ** hi`` for a log axis's limits, kept inside the positive finite floats.

    >>> log_limits(0.0, 400.0) == (1.0, float(np.finfo(float).max))
    True
    """
    info = np.finfo(float)

    def power(x: float) -> float:
        if x >= math.log10(info.max):
            return float(info.max)
        return max(10.0**x, float(info.tiny))  # 10 ** -400 underflows to 0, not an error

    return power(lo), power(hi)


def is_log_metric(metric: str) -> bool:
    """Perplexities read as their loss on a log axis."""
    name = metric.lower()
    return name.endswith("perplexity") or name == "ppl"


def scale_label(value: float) -> str:
    """A tick label of the scale axis: ``100M``, ``1.5B``, ``3e+15`` (plain text: no mathtext to
    typeset, which is most of a log axis's drawing time).

    >>> [scale_label(v) for v in (1e3, 1.5e9, 2e12, 3e15, 0.5)]
    ['1K', '1.5B', '2T', '3e+15', '0.5']
    """
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size and abs(value) < 1000 * size:
            return f"{value / size:.3g}{suffix}"
    if abs(value) >= 1e15:
        return f"{value:.0e}"
    return f"{value:.3g}"


def short_label(text: str, limit: int = 36) -> str:
    """A legend label of at most ``limit`` characters (the full name stays in the tables)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
