"""Metrics: one registry of metric facts, and the per-sample functions computed from records.

- :mod:`mirage.metrics.registry`: the registry (:class:`~mirage.metrics.registry.Metric` entries,
  name collisions refused) and the lookups every stage uses (kind, direction, probability and
  loss scales, partners);
- :mod:`mirage.metrics.per_sample`: mirage's record metrics (exact match, edit distances,
  log-probabilities, Brier score, option margins) and :func:`compute_sample_metrics`;
- :mod:`mirage.metrics.names`: lm-evaluation-harness, BIG-bench and theory names;
- :mod:`mirage.metrics.view`: :class:`RecordView`, the cached arrays the functions read.

Importing this package fills the registry.
"""

from __future__ import annotations

from . import names as _names  # noqa: F401  (registers the score-table and theory names)
from .per_sample import DEFAULT_METRICS, available_metrics, compute_sample_metrics
from .registry import (
    METRICS,
    REGISTRY,
    Context,
    Metric,
    PerTokenLoss,
    Registry,
    bigbench_kind,
    canonical_metric_name,
    facts,
    loss_rank,
    metric_kind,
    parse_kind_overrides,
    partners_of,
    per_token_loss_of,
    probability_scale,
    register_metric,
)
from .view import RecordView

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "REGISTRY",
    "Context",
    "Metric",
    "PerTokenLoss",
    "RecordView",
    "Registry",
    "available_metrics",
    "bigbench_kind",
    "canonical_metric_name",
    "compute_sample_metrics",
    "facts",
    "loss_rank",
    "metric_kind",
    "parse_kind_overrides",
    "partners_of",
    "per_token_loss_of",
    "probability_scale",
    "register_metric",
]
