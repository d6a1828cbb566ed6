"""Pass rates per sample from ``mirage eval --until-pass`` records: the ``pass_rates.csv`` table
and the ``pass_rate_sampled`` curve.

Each model's items were sampled until their first exact match or ``K`` attempts. The pooled
maximum-likelihood rate is items passed / attempts (each item weighted by its attempts), with the
exact interval of :mod:`mirage.stats.pass_until`. Beside it, what the teacher-forced probabilities
predict for the same estimator: ``E[passes] / E[attempts]`` from each item's ``pi =
exp(target_stop_logprob)``, and whether it lies in the interval.

**Its kind.** ``pass_rate_sampled`` is a probability that a sample is the whole right answer,
so on the paper's terms it is *nonlinear*: continuous in the per-token probability but compounding
over the target's tokens like ``p ** L``, as ``target_prob`` is. It is not *discontinuous*: it has
no step per item (0 of 2,000 items right greedily can be a rate of ``3e-4`` per sample), so it is
resolved far below one item in the test set, to about ``1 / attempts``. Verdicts do not use it
(they pair a discontinuous metric with a linear one); ``emergence.csv`` scores its curve.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import MirageInputError
from ..metrics import metric_kind
from ..schema.settings import AnalysisSettings
from ..schema.tables import PASS_RATES, set_shots
from ..schema.until_pass import has_until_pass
from ..schema.vocab import CIMethod
from ..stats.pass_until import pass_rate_estimate, predicted_pass_rate

METRIC = "pass_rate_sampled"
_KEYS = ["family", "task", "shots", "model"]


def pass_rate_table(
    records: pa.Table, samples: pd.DataFrame | None = None, settings: AnalysisSettings = AnalysisSettings()
) -> pd.DataFrame | None:
    """One row per (family, task, shots, model) of the until-pass records in ``records`` (None when
    there are none), columns of :data:`mirage.schema.tables.PASS_RATES`. ``samples`` (the per-sample
    metrics) gives the greedy exact match of the same items."""
    if not has_until_pass(records.column_names):
        return None
    wanted = ["family", "model", "scale", "task", "sample_id", "until_pass", "attempts", "passed"]
    optional = ["shots", "sampling_temperature", "target_stop_logprob"]
    frame = records.select(wanted + [c for c in optional if c in records.column_names]).to_pandas()
    frame = frame[frame["until_pass"].notna()]
    if frame.empty:
        return None
    for c in optional:
        if c not in frame.columns:
            frame[c] = np.nan
    set_shots(frame)
    greedy = _greedy_exact_match(samples)
    rows = [_model_row(keys, group, settings.level, greedy) for keys, group in frame.groupby(_KEYS, dropna=False)]
    table = pd.DataFrame(rows, columns=list(PASS_RATES.names))
    set_shots(table)
    return table.sort_values(["family", "task", "shots", "scale", "model"], kind="stable").reset_index(drop=True)


def _greedy_exact_match(samples: pd.DataFrame | None) -> dict[tuple[Any, ...], float]:
    """Mean exact match of the greedy outputs per (family, task, shots, model)."""
    if samples is None or "exact_match" not in samples.columns:
        return {}
    frame = samples.copy()
    if "shots" not in frame.columns:
        frame["shots"] = pd.NA
    means = frame.groupby(_KEYS, dropna=False)["exact_match"].mean()
    return {_key(k): float(v) for k, v in means.items()}


def _key(keys: Any) -> tuple[Any, ...]:
    """A group key with missing shots made comparable (NaN != NaN)."""
    return tuple(None if (not isinstance(k, str) and pd.isna(k)) else k for k in keys)


def _one(group: pd.DataFrame, column: str, what: str, where: str) -> Any:
    values = group[column].dropna().unique()
    if len(values) > 1:
        shown = ", ".join(str(v) for v in sorted(values)[:4])
        raise MirageInputError(
            f"{where} mixes until-pass records of different {what} ({shown}); their attempts are not one design: "
            "put them in different stores or tasks"
        )
    return values[0] if len(values) else math.nan


def _model_row(
    keys: tuple[Any, ...], group: pd.DataFrame, level: float, greedy: dict[tuple[Any, ...], float]
) -> dict[str, Any]:
    family, task, shots, model = keys
    where = f"model {model!r} of family {family!r} on task {task!r}"
    limit = int(_one(group, "until_pass", "limits", where))
    temperature = float(_one(group, "sampling_temperature", "temperatures", where))
    passed = group["passed"].astype(bool).to_numpy()
    attempts = group["attempts"].to_numpy(dtype=np.int64)
    est = pass_rate_estimate(len(group), int(passed.sum()), int((attempts[passed] - 1).sum()), limit, level)
    logprob = group["target_stop_logprob"].to_numpy(dtype=float)
    known = np.isfinite(logprob)
    pi = np.exp(logprob[known])
    predicted = passes = expected_attempts = math.nan
    if known.all():
        passes, expected_attempts, predicted = predicted_pass_rate(pi, limit)
    agree = bool(est.ci_low <= predicted <= est.ci_high) if math.isfinite(predicted) else None
    return {
        "family": family,
        "task": task,
        "shots": shots,
        "model": model,
        "scale": float(group["scale"].iloc[0]),
        "n_items": est.n_items,
        "until_pass": limit,
        "temperature": temperature,
        "items_passed": est.passed,
        "attempts": est.attempts,
        "pass_rate": est.rate,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "ci_method": est.method,
        "predicted_pass_rate": predicted,
        "predicted_passes": passes,
        "predicted_attempts": expected_attempts,
        "agree": agree,
        "n_predicted": int(known.sum()),
        "mean_target_stop_prob": float(pi.mean()) if len(pi) else math.nan,
        "greedy_exact_match": greedy.get(_key(keys), math.nan),
    }


def pass_rate_curves(pass_rates: pd.DataFrame, settings: AnalysisSettings = AnalysisSettings()) -> pd.DataFrame:
    """The ``pass_rate_sampled`` points of ``curves.csv``: one per model, its pooled rate and exact
    interval; ``n_samples`` is the items, ``stderr`` the rate's asymptotic standard error (from the
    observed information ``S / p**2 + F / (1 - p)**2``; empty at 0 passes)."""
    kind, higher = metric_kind(METRIC, settings.kind_overrides) or ("nonlinear", True)
    rate = pass_rates["pass_rate"].to_numpy(dtype=float)
    passes = pass_rates["items_passed"].to_numpy(dtype=float)
    failures = pass_rates["attempts"].to_numpy(dtype=float) - passes
    with np.errstate(divide="ignore", invalid="ignore"):
        info = passes / rate**2 + np.where(failures > 0, failures / (1 - rate) ** 2, 0.0)
        stderr = np.where((passes > 0) & (info > 0), 1.0 / np.sqrt(info), np.nan)
    return pd.DataFrame(
        {
            "family": pass_rates["family"],
            "model": pass_rates["model"],
            "scale": pass_rates["scale"],
            "task": pass_rates["task"],
            "shots": pass_rates["shots"],
            "metric": METRIC,
            "metric_kind": kind,
            "higher_is_better": higher,
            "value": rate,
            "ci_low": pass_rates["ci_low"],
            "ci_high": pass_rates["ci_high"],
            "n_samples": pass_rates["n_items"].astype(float),
            "ci_method": CIMethod.UNTIL_PASS.value,
            "stderr": stderr,
        }
    )
