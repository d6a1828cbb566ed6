"""The one registry of metric facts: every name mirage knows, and everything it knows about it.

A metric's entry (:class:`Metric`) holds its kind and direction, its per-sample function when it
can be computed from records, the scale its values are judged on (a per-token probability, a
per-token loss), the continuous metrics that pair with it, and where the name is recognised. The
names of mirage's own record metrics, of lm-evaluation-harness and BIG-bench score tables and of
the theory's curves are in this one table (:mod:`mirage.metrics.per_sample` and
:mod:`mirage.metrics.names` fill it); registering a name twice is an error, so no two tables can
disagree about a name.

A metric's **kind** (:class:`~mirage.schema.vocab.MetricKind`) says how it responds to a smooth
improvement in per-token probability p: ``discontinuous`` (a step per sample: exact match,
multiple-choice grade, acc), ``nonlinear`` (compounding like ``p ** L``), ``linear`` (about
linear in the per-token log-probability or error: the paper's *continuous* metrics). Verdicts
pair a discontinuous curve with a linear one of the same outputs.

>>> metric_kind("acc,none")
('discontinuous', True)
>>> canonical_metric_name("exact_match[first-number]")
'exact_match'
>>> metric_kind("no_such_metric") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from ..errors import MirageInputError
from ..schema.vocab import KINDS, StrEnum

if TYPE_CHECKING:
    from .view import RecordView

T = TypeVar("T")
ArrayFn = Callable[[np.ndarray], np.ndarray]


class Registry(Generic[T]):
    """Named entries in registration order; a name registered twice is an error.

    >>> r = Registry[int]("number")
    >>> r.register("one", 1)
    1
    >>> r.register("one", 2)
    Traceback (most recent call last):
    ...
    ValueError: number 'one' is already registered (known: one)
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; raise ``ValueError`` if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered (known: {', '.join(self._entries)})")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T | None:
        """The entry of ``name``, or None."""
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[T]:
        """Every entry, in registration order."""
        return list(self._entries.values())


class Context(StrEnum):
    """Where a metric name is recognised."""

    ANY = "any"  # records and every score table
    BIGBENCH = "bigbench"  # names only BIG-bench results carry (kinds given to those rows only)
    THEORY = "theory"  # curves of the mathematical model (``mirage theory``)


@dataclass(frozen=True)
class PerTokenLoss:
    """How a continuous metric's value maps to a per-token loss (where the paper's model says
    improvement is a power law in scale): ``loss(value)``, ``|d loss / d value|`` for the
    delta-method variance, and ``rank``, the preference among the loss scales of one task
    (0 first)."""

    loss: ArrayFn
    derivative: ArrayFn
    rank: int


@dataclass(frozen=True)
class Metric:
    """Everything mirage knows about one metric name.

    ``compute`` is the per-sample function over records (None: a name of score tables only), with
    the record columns it ``requires``; ``binary`` metrics are 0/1 per sample (Wilson intervals).
    ``probability_scale`` maps a continuous metric to its per-token probability (``1/ppl``,
    ``exp(mean log p)``); ``per_token_loss`` to its per-token loss. ``partners``: the continuous
    metrics of the same outputs that re-score it, in order of preference. ``zero_floor``: its
    chance level is 0 (a generated answer is right or not); ``compounds``: it is exact match of a
    generated answer, ``p ** L`` of the per-token probability; ``same_as_tool``: computed from
    records exactly as lm-eval and BIG-bench compute it, so records of a run replace the reported
    number. ``context`` says where the name is recognised (:class:`Context`).
    """

    name: str
    kind: str
    higher_is_better: bool
    compute: Callable[[RecordView], np.ndarray] | None = field(default=None, repr=False)
    requires: tuple[str, ...] = ()
    binary: bool = False
    description: str = ""
    context: str = Context.ANY.value
    probability_scale: ArrayFn | None = field(default=None, repr=False)
    per_token_loss: PerTokenLoss | None = field(default=None, repr=False)
    partners: tuple[str, ...] = ()
    zero_floor: bool = False
    compounds: bool = False
    same_as_tool: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric kind must be one of {KINDS}, got {self.kind!r}")
        if self.context not in Context.values():
            raise ValueError(f"metric context must be one of {Context.values()}, got {self.context!r}")


REGISTRY: Registry[Metric] = Registry("metric")

# continuous partners of a discontinuous metric without its own list (the paper re-scores with a
# log-probability or an edit distance of the same outputs, else the Brier score)
DEFAULT_PARTNERS = ("target_logprob", "target_mean_logprob", "token_edit_distance", "char_edit_distance", "brier_score")


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry; a name that is already registered raises ``ValueError``."""
    return REGISTRY.register(metric.name, metric)


class _RecordMetrics(Mapping[str, Metric]):
    """The registered metrics that records can compute (a live, read-only view)."""

    def _names(self) -> list[str]:
        return [m.name for m in REGISTRY.values() if m.compute is not None]

    def __getitem__(self, name: str) -> Metric:
        metric = REGISTRY.get(name)
        if metric is None or metric.compute is None:
            raise KeyError(name)
        return metric

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


# name -> metric, for the metrics computed from records, in registration order
METRICS: Mapping[str, Metric] = _RecordMetrics()

# ------------------------------------------------------------------------------ lookups

_FILTER_SUFFIX = re.compile(r"\[[^\[\]]*\]$")


def canonical_metric_name(name: str) -> str:
    """``acc,none`` -> ``acc``; ``Exact_Str_Match`` -> ``exact_str_match``; an lm-eval answer
    filter, as ``exact_match,first-number`` or mirage's ``exact_match[first-number]``, names the
    same metric: ``exact_match``."""
    return _FILTER_SUFFIX.sub("", str(name).split(",")[0].strip()).strip().lower()


def facts(name: str, context: str = Context.ANY.value) -> Metric | None:
    """The entry of a metric name (canonicalised) recognised in ``context`` (names of
    :data:`Context.ANY` are recognised everywhere), or None."""
    entry = REGISTRY.get(canonical_metric_name(name))
    if entry is None or entry.context not in (Context.ANY.value, context):
        return None
    return entry


def metric_kind(name: str, overrides: Mapping[str, str] | None = None) -> tuple[str, bool] | None:
    """(kind, higher_is_better) of a score-table metric name, or None when the name is unknown."""
    key = canonical_metric_name(name)
    entry = facts(key)
    known = (entry.kind, entry.higher_is_better) if entry is not None else None
    if overrides and key in overrides:
        higher = known[1] if known else True
        return overrides[key], higher
    return known


def bigbench_kind(name: str) -> str | None:
    """Kind of a name only BIG-bench uses; None for a name known everywhere (its entry decides)
    or unknown."""
    if facts(name) is not None:
        return None
    entry = facts(name, Context.BIGBENCH.value)
    return entry.kind if entry is not None else None


def parse_kind_overrides(items: Iterable[str] | None) -> dict[str, str]:
    """Parse ``NAME=KIND`` strings from the command line.

    >>> parse_kind_overrides(["my_score=linear"])
    {'my_score': 'linear'}
    """
    out: dict[str, str] = {}
    for item in items or ():
        if "=" not in item:
            raise MirageInputError(f"expected NAME=KIND, got {item!r}", "--metric-kind")
        name, kind = (s.strip() for s in item.split("=", 1))
        if kind not in KINDS:
            raise MirageInputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", "--metric-kind")
        out[canonical_metric_name(name)] = kind
    return out


def probability_scale(metric: str, values: np.ndarray | Iterable[float]) -> np.ndarray:
    """A continuous metric on its per-token probability scale where it has one (else unchanged).

    >>> probability_scale("ppl", [2.0, 4.0]).tolist()
    [0.5, 0.25]
    """
    entry = facts(metric)
    arr = np.asarray(values, dtype=float)
    if entry is None or entry.probability_scale is None:
        return arr
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return entry.probability_scale(arr)


def per_token_loss_of(
    name: str, values: np.ndarray | Iterable[float], stderr: np.ndarray | Iterable[float] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(loss, variance of the loss) implied by a continuous metric, or None when it has no loss scale.

    The variance comes from ``stderr`` by the delta method (NaN where unknown).
    """
    entry = facts(name)
    if entry is None or entry.per_token_loss is None:
        return None
    v = np.asarray(values, dtype=float)
    se = np.full_like(v, np.nan) if stderr is None else np.asarray(stderr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = entry.per_token_loss.loss(v)
        var = (entry.per_token_loss.derivative(v) * se) ** 2
    return loss, var


def loss_rank(name: str) -> int | None:
    """Preference of a metric's per-token loss scale among one task's (0 first), None without one."""
    entry = facts(name)
    return entry.per_token_loss.rank if entry is not None and entry.per_token_loss is not None else None


def partners_of(name: str) -> tuple[str, ...]:
    """The continuous metrics that re-score ``name``, most preferred first (its own, then the
    defaults)."""
    entry = facts(name)
    own = entry.partners if entry is not None else ()
    return own + tuple(p for p in DEFAULT_PARTNERS if p not in own)
