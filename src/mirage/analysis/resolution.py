"""Better statistics: is each model above chance, and how many test items would show it
(``resolution.csv``, :data:`mirage.schema.tables.RESOLUTION`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema.settings import AnalysisSettings
from ..schema.tables import RESOLUTION, set_shots
from ..schema.vocab import CIMethod, RateSource, RowKind
from ..stats import samples_needed


def resolution_table(
    curves: pd.DataFrame,
    samples: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    settings: AnalysisSettings = AnalysisSettings(),
    power: float = 0.8,
) -> pd.DataFrame:
    """Better statistics: is each model above chance, and how many items would show it?

    One row per model and binary record metric: the Wilson interval, the chance level (0 for
    exact match, mean 1/n_choices for multiple choice), whether the lower bound clears chance,
    and the items needed to show a rate above chance with ``power`` at one-sided level
    ``(1+level)/2`` (:func:`mirage.stats.power.samples_needed`). The rate used is the exact match
    predicted from the continuous metric where available (so a model scoring 0/n still gets an
    answer), else the observed rate. ``resolution`` is 1/(items x mean target length), the
    smallest per-token change the test set can register (Schaeffer et al., Sec. 3).
    """
    return resolution_from_stats(curves, resolution_model_stats(samples), predictions, settings, power)


_KEYS = ["family", "task", "shots", "model"]


def resolution_model_stats(samples: pd.DataFrame) -> pd.DataFrame:
    """Per (family, task, shots, model): mean target length and chance of multiple choice (mean
    1/n_choices) — all :func:`resolution_from_stats` needs of the per-sample metrics, so a
    streamed analysis keeps these few numbers per model instead of every sample."""
    s = samples[[c for c in [*_KEYS, "target_length", "n_choices"] if c in samples.columns]].copy()
    set_shots(s)
    if "n_choices" not in s.columns:
        s["n_choices"] = np.nan
    s["inverse_choices"] = np.where(s["n_choices"] > 0, 1.0 / s["n_choices"], np.nan)
    return (
        s.groupby(_KEYS, dropna=False)
        .agg(mean_length=("target_length", "mean"), chance_mc=("inverse_choices", "mean"))
        .reset_index()
    )


def resolution_from_stats(
    curves: pd.DataFrame,
    per_model: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    settings: AnalysisSettings = AnalysisSettings(),
    power: float = 0.8,
) -> pd.DataFrame:
    """:func:`resolution_table` from the per-model numbers of :func:`resolution_model_stats`."""
    binary = curves[curves["ci_method"] == CIMethod.WILSON.value]
    binary = binary[binary["metric"].isin(["exact_match", "multiple_choice_grade"])]
    if binary.empty:
        return pd.DataFrame()  # no binary record metric: no table (the file is not written)
    keys = _KEYS
    table = binary.merge(per_model, on=keys, how="left")
    table["predicted"] = np.nan
    if predictions is not None and len(predictions):
        p = predictions[predictions["row_kind"] == RowKind.MODEL.value].copy()
        set_shots(p)
        table = table.drop(columns="predicted").merge(
            p[keys + ["predicted_exact_match"]].rename(columns={"predicted_exact_match": "predicted"}),
            on=keys,
            how="left",
        )
    is_em = (table["metric"] == "exact_match").to_numpy()
    chance = np.where(is_em, 0.0, table["chance_mc"].to_numpy(dtype=float))
    use_pred = is_em & table["predicted"].notna().to_numpy()
    rate = np.where(use_pred, table["predicted"].to_numpy(dtype=float), table["value"].to_numpy(dtype=float))
    n = np.where(
        np.isfinite(chance),
        samples_needed(rate, np.nan_to_num(chance), level=(1 + settings.level) / 2, power=power),
        np.nan,
    )
    out = table[keys + ["scale", "metric", "n_samples", "value", "ci_low", "ci_high"]].copy()
    out["n_samples"] = out["n_samples"].astype(int)
    out["chance"] = chance
    out["above_chance"] = out["ci_low"].to_numpy(dtype=float) > chance
    out["rate_used"] = rate
    out["rate_source"] = np.where(use_pred, RateSource.PREDICTED.value, RateSource.OBSERVED.value)
    out["samples_needed"] = n
    mean_len = table["mean_length"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["resolution"] = np.where(mean_len > 0, 1.0 / (out["n_samples"] * mean_len), np.nan)
    return out[list(RESOLUTION.names)].reset_index(drop=True)
