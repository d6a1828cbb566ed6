"""Verdicts: is an apparent emergence the metric's doing, or the model's?

One verdict per (family, task[, shots, curve-by columns]) and discontinuous metric that has a
continuous metric of the same outputs. The decision tests the paper's claim directly, in three
steps (the statistics are in :mod:`mirage.stats.evidence`; the reasoning, assumptions and known
failure cases in ``docs/verdicts.md``):

1. **Apparent emergence**: does the discontinuous curve look emergent — flat at its start over at
   least ``min_flat_share`` of the log-scale range, then a rise of at least ``min_effect`` that
   the intervals resolve? No intervals and no way to get them: *insufficient evidence*. Not
   emergent-looking: *no apparent emergence*.
2. **Is the per-token loss smooth?** The continuous metric on its per-token loss scale
   (cross-entropy, log perplexity, the per-token error of the outputs) is tested as a power law
   in scale against a break between neighbouring models (:func:`~mirage.stats.evidence.power_law_break_test`).
3. **Does the smooth law imply the discontinuous curve?** From records, exact match is predicted
   from the smooth law with the known target lengths; the outputs are compared with the model's
   own probabilities of the target (outputs stuck at chance while the loss improves is a loss
   threshold, in the model); multiple-choice margins are compared with the smooth loss of the
   correct option. From score tables, the transform has one fitted effective length.

Verdicts: *explained by metric* (emergent-looking; smooth and implied), *not explained by metric
choice* (emergent-looking; a break, a lag or a transform that fails), *no apparent emergence*,
*insufficient evidence*. Every row carries the numbers it was decided on and a reason in words.

Two paths give the same rows bit for bit. Groups with per-sample records are decided one group at
a time (:func:`record_group_verdicts`, called while the group's samples are in memory). Groups of
score-table curves, which can number hundreds of thousands, are decided together: every step runs
on arrays of all their verdicts at once (:class:`_ScoreBatch`), verdicts with the same number of
models side by side (so each one meets exactly the arithmetic it meets alone), identical loss
curves tested once.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..memory import release_free_memory
from ..metrics import canonical_metric_name, facts, loss_rank, partners_of, per_token_loss_of
from ..schema.settings import VerdictSettings
from ..schema.tables import EVIDENCE, VERDICTS, set_shots
from ..schema.vocab import (
    CONTINUOUS_KINDS,
    VERDICT_ORDER,
    BreakKind,
    CIMethod,
    MetricKind,
    NotApparent,
    Outcome,
    TransformCheck,
    Verdict,
    VerdictTest,
)
from ..stats import emergence_score, grouped_emergence_scores, grouped_jump_sharpness, jump_sharpness, z_value
from ..stats.evidence import (
    BreakTest,
    TransformTest,
    apparent_emergence,
    exact_match_transform_test,
    output_lag_test,
    power_law_break_test,
)

VERDICT_COLUMNS = list(VERDICTS.names)
EVIDENCE_COLUMNS = list(EVIDENCE.names)


# a verdict row's test columns before any test ran (and where none applies)
_NOT_YET_TESTED: dict[str, Any] = dict(
    loss_metric="",
    loss_alpha=math.nan,
    loss_alpha_se=math.nan,
    break_p_value=math.nan,
    break_kind="",
    break_at_scale=math.nan,
    break_size=math.nan,
    lag_p_value=math.nan,
    lag_worst_gap=math.nan,
    lag_at_scale=math.nan,
    transform_check=TransformCheck.NOT_APPLICABLE.value,
    transform_kind="",
    transform_p_value=math.nan,
    transform_worst_z=math.nan,
    transform_factor=math.nan,
    tests=0,
)


# enum values as plain strings for the row builders: a member's ``.value`` is two descriptor
# lookups, and the batch path builds rows for each of 125,000 verdicts
_TEST_APPARENT = VerdictTest.APPARENT_EMERGENCE.value
_TEST_BREAK = VerdictTest.LOSS_BREAK.value
_TEST_TRANSFORM = VerdictTest.TRANSFORM.value
_APPARENT, _NOT_APPARENT = Outcome.APPARENT.value, Outcome.NOT_APPARENT.value
_BREAK, _SMOOTH = Outcome.BREAK.value, Outcome.SMOOTH.value
_PASSED, _FAILED = TransformCheck.PASSED.value, TransformCheck.FAILED.value
_INSUFFICIENT, _NONE = Verdict.INSUFFICIENT.value, Verdict.NONE.value
_EXPLAINED, _NOT_EXPLAINED = Verdict.EXPLAINED.value, Verdict.NOT_EXPLAINED.value
_TOO_FEW_MODELS, _NO_INTERVALS = NotApparent.TOO_FEW_MODELS.value, NotApparent.NO_INTERVALS.value
_NOT_RESOLVED, _SMALL_EFFECT = NotApparent.NOT_RESOLVED.value, NotApparent.SMALL_EFFECT.value
_NO_FLAT_START = NotApparent.NO_FLAT_START.value
_STEP = BreakKind.STEP.value


def _apparent_emergence_evidence(
    ev_base: dict[str, Any], metric: str, rise: float, apparent: bool, reason: str, span: str, flat_share: float
) -> dict[str, Any]:
    """The evidence.csv row of step 1 (apparent emergence), for one curve or a batch alike."""
    return dict(
        ev_base,
        test=_TEST_APPARENT,
        metric=metric,
        statistic=rise,
        p_value=math.nan,
        outcome=_APPARENT if apparent else (reason or _NOT_APPARENT),
        detail=f"rise {span}, flat over {_fmt(flat_share, '.2f')} of the log-scale range",
    )


def _fmt(v: float, spec: str = ".3g") -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def _p(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "p = nan"
    return "p < 1e-12" if v < 1e-12 else f"p = {v:.2g}"


# ----------------------------------------------------------------------------- per-group inputs


@dataclass
class _Channel:
    """One continuous metric on its per-token loss scale, per model (sorted like the curve)."""

    metric: str
    loss: np.ndarray
    loss_var: np.ndarray


@dataclass
class _Items:
    """Item-level arrays of one group from records, per model (sorted like the curve)."""

    exact_match: list[np.ndarray] | None = None
    target_logprob: list[np.ndarray] | None = None
    token_accuracy: list[np.ndarray] | None = None
    expected_token_accuracy: list[np.ndarray] | None = None
    n_choices: float = math.nan


def _token_weighted_loss(nll: np.ndarray, length: np.ndarray) -> tuple[float, float]:
    """(sum nll / sum length, its ratio-estimator variance) over items."""
    tot = float(length.sum())
    if tot <= 0 or len(nll) == 0:
        return math.nan, math.nan
    loss = float(nll.sum()) / tot
    var = float(np.sum((nll - loss * length) ** 2)) / tot**2
    return loss, var


# the per-sample columns the record channels read (the rest of a group's samples are not copied)
_RECORD_CHANNEL_COLUMNS = (
    "model",
    "choice_token_loss",
    "correct_choice_mean_logprob",
    "correct_choice_length",
    "n_choices",
    "exact_match",
    "target_length",
    "target_logprob",
    "token_edit_distance",
    "target_mean_token_prob",
)


def _record_channels(group: pd.DataFrame, models: list[str], disc: str) -> tuple[list[_Channel], _Items]:
    """Loss-scale channels and item arrays of one group's per-sample metrics."""
    used = [c for c in _RECORD_CHANNEL_COLUMNS if c in group.columns]
    by_model = {m: g for m, g in group[used].groupby("model", sort=False)}
    items = _Items()
    channels: list[_Channel] = []

    def per_model(fn: Callable[[pd.DataFrame], tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        vals = [fn(by_model[m]) for m in models]
        return np.array([v[0] for v in vals], dtype=float), np.array([v[1] for v in vals], dtype=float)

    has = lambda col: col in group.columns and group[col].notna().any()  # noqa: E731
    if disc == "multiple_choice_grade":
        if has("choice_token_loss"):

            def option_loss(g: pd.DataFrame) -> tuple[float, float]:
                v = g["choice_token_loss"].dropna().to_numpy(float)
                return (float(v.mean()), float(v.var(ddof=1)) / len(v)) if len(v) > 1 else (math.nan, math.nan)

            loss, var = per_model(option_loss)
            channels.append(_Channel("choice_token_loss", loss, var))
        if has("correct_choice_mean_logprob") and has("correct_choice_length"):

            def ce_correct(g: pd.DataFrame) -> tuple[float, float]:
                ok = g["correct_choice_mean_logprob"].notna() & g["correct_choice_length"].notna()
                L = g.loc[ok, "correct_choice_length"].to_numpy(float)
                return _token_weighted_loss(-g.loc[ok, "correct_choice_mean_logprob"].to_numpy(float) * L, L)

            loss, var = per_model(ce_correct)
            channels.append(_Channel("correct_choice_mean_logprob", loss, var))
            if has("choice_token_loss"):
                # the paper's model of multiple choice (the wrong options share what the correct one
                # leaves) makes the correct option's share of the per-token softmax over options equal
                # its per-token probability; a share stuck at chance while that probability rises is
                # a threshold in the model's discrimination, the multiple-choice form of an output lag
                items.token_accuracy, items.expected_token_accuracy = [], []
                for m in models:
                    g = by_model[m]
                    ok = (g["choice_token_loss"].notna() & g["correct_choice_mean_logprob"].notna()).to_numpy()
                    items.token_accuracy.append(np.exp(-g["choice_token_loss"].to_numpy(float)[ok]))
                    items.expected_token_accuracy.append(np.exp(g["correct_choice_mean_logprob"].to_numpy(float)[ok]))
        if "n_choices" in group.columns:
            with np.errstate(divide="ignore"):
                items.n_choices = float(np.nanmean(1.0 / group["n_choices"].to_numpy(float)))
        return channels, items
    # generation: exact match from the teacher-forced loss and from the outputs' token errors
    if has("exact_match"):
        items.exact_match = [by_model[m]["exact_match"].to_numpy(float) for m in models]
    length = {m: by_model[m]["target_length"].to_numpy(float) for m in models}
    if has("target_logprob"):

        def ce(g: pd.DataFrame) -> tuple[float, float]:
            ok = g["target_logprob"].notna() & (g["target_length"] > 0)
            return _token_weighted_loss(
                -g.loc[ok, "target_logprob"].to_numpy(float), g.loc[ok, "target_length"].to_numpy(float)
            )

        loss, var = per_model(ce)
        channels.append(_Channel("target_mean_logprob", loss, var))
        items.target_logprob = [by_model[m]["target_logprob"].to_numpy(float) for m in models]
    if has("token_edit_distance"):

        def ted(g: pd.DataFrame) -> tuple[float, float]:
            ok = g["token_edit_distance"].notna() & (g["target_length"] > 0)
            d = np.minimum(g.loc[ok, "token_edit_distance"].to_numpy(float), g.loc[ok, "target_length"].to_numpy(float))
            L = g.loc[ok, "target_length"].to_numpy(float)
            e, var_e = _token_weighted_loss(d, L)
            if not (0 < e < 1):
                return math.nan, math.nan
            loss = -math.log1p(-e)
            return loss, var_e / (1 - e) ** 2

        loss, var = per_model(ted)
        if items.target_logprob is None:  # only the outputs: their per-token error is the loss scale
            channels.append(_Channel("token_edit_distance", loss, var))
            items.target_logprob = [
                length[m] * math.log1p(-min(1 - math.exp(-lv), 1 - 1e-12))
                if np.isfinite(lv)
                else np.full(len(length[m]), np.nan)
                for m, lv in zip(models, loss)
            ]
        if has("target_mean_token_prob"):
            items.token_accuracy, items.expected_token_accuracy = [], []
            for m in models:
                g = by_model[m]
                ok = (
                    g["token_edit_distance"].notna() & g["target_mean_token_prob"].notna() & (g["target_length"] > 0)
                ).to_numpy()
                L = g["target_length"].to_numpy(float)[ok]
                acc = 1.0 - np.minimum(g["token_edit_distance"].to_numpy(float)[ok], L) / L
                items.token_accuracy.append(acc)
                items.expected_token_accuracy.append(g["target_mean_token_prob"].to_numpy(float)[ok])
    return channels, items


def _rank(metric: str) -> int:
    """Preference of a continuous metric's loss scale (those without one last)."""
    rank = loss_rank(metric)
    return 99 if rank is None else rank


def _score_channels(g: pd.DataFrame, models: list[str]) -> list[_Channel]:
    """Loss-scale channels among the continuous curves of a group of score-table curves."""
    out = []
    cont = g[g["metric_kind"].isin(CONTINUOUS_KINDS)]
    names = sorted(cont["metric"].unique(), key=lambda m: (_rank(m), m))
    for name in names:
        c = cont[cont["metric"] == name].set_index("model").reindex(models)
        got = per_token_loss_of(
            name, c["value"].to_numpy(float), c["stderr"].to_numpy(float) if "stderr" in c.columns else None
        )
        if got is None:
            continue
        out.append(_Channel(str(name), got[0], got[1]))
    return out


# ----------------------------------------------------------------------------- the rule


GroupKey = tuple[Hashable, ...]
VerdictEntry = tuple[dict[str, Any], list[dict[str, Any]]]  # a verdict row and its evidence rows


def group_key(values: Iterable[Any]) -> GroupKey:
    """A verdict group's key as a hashable tuple: missing values as ``pd.NA``, numpy scalars as
    Python ones (so keys from groupby, from rows and from a record unit compare equal)."""
    out: list[Hashable] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(pd.NA)
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return tuple(out)


def verdict_keys(settings: VerdictSettings) -> list[str]:
    """The columns of one verdict group: family, task, shots and the curve-by columns."""
    return ["family", "task", "shots"] + list(settings.curve_by)


def record_group_verdicts(
    g: pd.DataFrame, recs: pd.DataFrame | None, settings: VerdictSettings = VerdictSettings()
) -> list[VerdictEntry]:
    """The verdicts of one group (every curve of one family, task[, shots, curve-by]), decided with
    the group's per-sample metrics ``recs`` (None: from the curves alone); one entry per
    discontinuous metric, in name order. ``g`` keeps the row order of the whole curves table."""
    keys = verdict_keys(settings)
    kinds = g.drop_duplicates("metric").set_index("metric")["metric_kind"]
    disc = sorted(m for m, k in kinds.items() if k == MetricKind.DISCONTINUOUS.value)
    cont = sorted(m for m, k in kinds.items() if k in CONTINUOUS_KINDS)
    if not disc or not cont:
        return []
    head = g.iloc[0]
    base = {k: head[k] for k in keys}
    return [_verdict(base, d, cont, g, recs, settings) for d in disc]


def verdicts_table(
    curves: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    settings: VerdictSettings = VerdictSettings(),
    *,
    decided: Mapping[GroupKey, list[VerdictEntry]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(verdicts, evidence): one verdict per group and discontinuous metric with a continuous partner.

    ``curves`` in the ``curves.csv`` format; ``samples`` the per-sample metrics of
    :func:`mirage.metrics.compute_sample_metrics` when records were given (the record-level
    tests need them). ``decided``: groups already decided by :func:`record_group_verdicts` while
    their samples were in memory (the streaming analysis), by group key. ``evidence`` has one row
    per test run (tidy: test, metric, statistic, p-value, outcome, detail), group by group.
    """
    keys = verdict_keys(settings)
    decided = {group_key(k): v for k, v in (decided or {}).items()}
    sample_groups: dict[GroupKey, pd.DataFrame] = {}
    if samples is not None and len(samples):
        s = samples.copy()
        set_shots(s)
        present = [k for k in keys if k in s.columns]
        if len(present) == len(keys):
            sample_groups = {
                group_key(k if isinstance(k, tuple) else (k,)): grp
                for k, grp in s.groupby(keys, sort=False, dropna=False)
            }
    entries: list[tuple[int, VerdictEntry]] = []  # groups decided one by one
    batched: Iterable[tuple[int, VerdictEntry]] = ()  # the rest, decided together, made as read
    if len(curves):
        ordinal = curves.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
        heads = curves.iloc[np.unique(ordinal, return_index=True)[1]]
        key_of = [group_key(row) for row in heads[keys].itertuples(index=False, name=None)]
        per_group = [k in decided or k in sample_groups for k in key_of]
        if any(per_group):
            by_ordinal = np.flatnonzero(per_group)
            selected = np.isin(ordinal, by_ordinal)
            for o, g in curves[selected].groupby(ordinal[selected], sort=True):
                key = key_of[int(o)]
                found = decided[key] if key in decided else record_group_verdicts(g, sample_groups.get(key), settings)
                entries.extend((int(o), e) for e in found)
        batch = ~np.isin(ordinal, np.flatnonzero(per_group))
        if batch.any():
            batched = _ScoreBatch(curves[batch], ordinal[batch], keys, settings).entries()

    def order(e: tuple[int, VerdictEntry]) -> tuple[int, str]:
        return e[0], str(e[1][0]["discontinuous_metric"])

    entries.sort(key=order)
    # both streams are in (group, metric) order and no group is in both: merged, they are the
    # order a sort of all entries gives, and the batch's rows are turned into tables block by
    # block as they are made instead of all being held as dicts first
    merged = heapq.merge(entries, batched, key=order)
    return _verdict_frames((e for _, e in merged), settings)


# verdict entries turned into table rows at a time: the rows as Python dicts are released block by
# block, so the dicts and pandas' conversion of them are not all in memory at once
_FRAME_BLOCK = 20_000


def _verdict_frames(entries: Iterable[VerdictEntry], settings: VerdictSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The verdicts table (decided verdicts first) and the evidence table, from verdict entries
    (read block by block)."""
    keys = verdict_keys(settings)
    row_columns, ev_columns = VERDICTS.columns_for(settings.curve_by), EVIDENCE.columns_for(settings.curve_by)
    row_parts, ev_parts = [], []
    stream = iter(entries)
    while block := list(itertools.islice(stream, _FRAME_BLOCK)):
        row_parts.append(pd.DataFrame([row for row, _ in block], columns=row_columns))
        ev_parts.append(pd.DataFrame([ev for _, evs in block for ev in evs], columns=ev_columns))
        del block
    table = pd.concat(row_parts, ignore_index=True) if row_parts else pd.DataFrame(columns=row_columns)
    set_shots(table)
    order = {v.value: i for i, v in enumerate(VERDICT_ORDER)}
    table = (
        table.assign(_o=table["verdict"].map(order))
        .sort_values(["_o"] + keys + ["discontinuous_metric"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    ev_table = pd.concat(ev_parts, ignore_index=True) if ev_parts else pd.DataFrame(columns=ev_columns)
    set_shots(ev_table)
    return table, ev_table


def _verdict(
    base: dict[str, Any], d: str, cont: list[str], g: pd.DataFrame, recs: pd.DataFrame | None, st: VerdictSettings
) -> VerdictEntry:
    """One verdict of a group, decided on its own (the path of groups with records)."""
    gd = g[g["metric"] == d].sort_values(["scale", "model"], kind="stable")
    models = gd["model"].astype(str).tolist()
    x = gd["scale"].to_numpy(float)
    y = gd["value"].to_numpy(float)
    lo, hi = gd["ci_low"].to_numpy(float), gd["ci_high"].to_numpy(float)
    higher = bool(gd["higher_is_better"].iloc[0]) if "higher_is_better" in gd.columns else True
    canon = canonical_metric_name(d)
    from_records = (
        recs is not None and (gd["ci_method"] == CIMethod.WILSON.value).all() if "ci_method" in gd.columns else False
    )
    channels: list[_Channel] = []
    items = _Items()
    if from_records and recs is not None:
        channels, items = _record_channels(recs, models, canon)
    if not channels:
        channels = _score_channels(g, models)
    # the continuous metric named in the row: the loss channel, else the first continuous metric
    partner = channels[0].metric if channels else next((p for p in partners_of(d) if p in cont), cont[0])
    floor = math.nan
    entry = facts(canon)
    compounds = entry is not None and entry.compounds  # exact match of a generated answer: p ** L
    if entry is not None and entry.zero_floor:
        floor = 0.0
    elif canon == "multiple_choice_grade" and np.isfinite(items.n_choices):
        floor = items.n_choices
    elif "chance" in gd.columns and gd["chance"].notna().all():
        floor = float(gd["chance"].mean())
    percent = bool(np.nanmax(np.abs(y)) > 1.5) if len(y) else False
    ae = apparent_emergence(
        x,
        y,
        lo,
        hi,
        higher_is_better=higher,
        floor=floor,
        min_effect=st.min_effect * (100.0 if percent else 1.0),
        floor_band=st.floor_band,
        min_flat_share=st.min_flat_share,
        min_models=st.min_models,
    )
    gc = g[g["metric"] == partner].set_index("model").reindex(models) if partner in set(g["metric"]) else None
    es_c = math.nan
    if gc is not None and gc["value"].notna().sum() >= 3:
        okc = gc["value"].notna().to_numpy()
        es_c = emergence_score(x[okc], gc["value"].to_numpy(float)[okc]).score
    min_samples = (
        float(gd["n_samples"].min()) if "n_samples" in gd.columns and gd["n_samples"].notna().any() else math.nan
    )
    rise, flat_share = float(ae.rise[0]), float(ae.flat_share[0])
    row: dict[str, Any] = dict(
        base,
        discontinuous_metric=d,
        continuous_metric=partner,
        n_models=len(models),
        min_samples=min_samples,
        apparent_emergence=bool(ae.apparent[0]),
        floor=floor,
        value_first=float(y[0]) if len(y) else math.nan,
        value_top=float(ae.top[0]),
        rise=rise,
        rise_resolved=bool(ae.rise_resolved[0]),
        flat_share=flat_share,
        emergence_score_discontinuous=emergence_score(x, y).score if len(y) >= 3 else math.nan,
        emergence_score_continuous=es_c,
        jump_share_discontinuous=jump_sharpness(x, y).jump_share if len(y) >= 2 else math.nan,
        **_NOT_YET_TESTED,
    )
    ev: list[dict[str, Any]] = []
    ev_base = dict(base, discontinuous_metric=d)
    reason = str(ae.reason[0])
    span = f"{_fmt(float(ae.base[0]))} -> {_fmt(float(ae.top[0]))}"
    ev.append(_apparent_emergence_evidence(ev_base, d, rise, bool(ae.apparent[0]), reason, span, flat_share))
    decided = _step_one_decision(d, reason, span, len(models), min_samples, rise, flat_share, percent, st)
    if decided is not None:
        return dict(row, verdict=decided[0], reason=decided[1]), ev
    # ---- step 2: a smooth per-token loss?
    usable = [c for c in channels if int(np.sum(np.isfinite(c.loss) & (c.loss > 0))) >= st.min_models]
    if not usable:
        reason_text = _no_loss_reason(d, span, [c.metric for c in channels], cont, st)
        return dict(row, verdict=Verdict.INSUFFICIENT.value, reason=reason_text), ev
    primary = usable[0]
    failures: list[str] = []
    bt_primary: BreakTest | None = None
    for ch in usable:
        bt = power_law_break_test(x, ch.loss, ch.loss_var, tolerance=st.loss_tolerance, min_models=st.min_models)
        p = float(bt.break_p[0])
        at = float(x[bt.break_index[0]]) if bt.break_index[0] >= 0 else math.nan
        broke = bool(np.isfinite(p) and p < st.test_level)
        alpha, alpha_se, kind, size = (
            float(bt.alpha[0]),
            float(bt.alpha_se[0]),
            str(bt.break_kind[0]),
            float(bt.break_size[0]),
        )
        ev.append(_break_evidence(ev_base, ch.metric, alpha, alpha_se, p, float(bt.break_z[0]), kind, size, at, broke))
        row["tests"] += 1
        if ch is primary:
            bt_primary = bt
            row.update(
                loss_metric=ch.metric,
                loss_alpha=alpha,
                loss_alpha_se=alpha_se,
                break_p_value=p,
                break_kind=kind,
                break_at_scale=at,
                break_size=size,
            )
        if broke:
            failures.append(_break_failure(ch.metric, kind, at, p))
    assert bt_primary is not None
    # ---- step 3: does the smooth law imply the curve? does the model's output follow its probabilities?
    if items.token_accuracy is not None and items.expected_token_accuracy is not None:
        lag = output_lag_test(items.token_accuracy, items.expected_token_accuracy, tolerance=st.lag_tolerance)
        row.update(lag_p_value=lag.p_value, lag_worst_gap=lag.worst_gap, lag_at_scale=float(x[lag.worst_index]))
        row["tests"] += 1
        lagged = lag.p_value < st.test_level
        mc = canon == "multiple_choice_grade"
        what = (
            "the correct option's share of the per-token softmax over options"
            if mc
            else "token accuracy of the outputs"
        )
        implied = "its per-token probability" if mc else "the target's probabilities"
        implies = "implies" if mc else "imply"
        ev.append(
            dict(
                ev_base,
                test=VerdictTest.OUTPUT_LAG.value,
                metric="choice_token_loss" if mc else "token_edit_distance",
                statistic=float(lag.z[lag.worst_index]),
                p_value=lag.p_value,
                outcome=(Outcome.LAG if lagged else Outcome.CONSISTENT).value,
                detail=f"{what} {_fmt(float(lag.observed[lag.worst_index]))} against "
                f"{_fmt(float(lag.expected[lag.worst_index]))} from {implied} "
                f"at scale {_fmt(float(x[lag.worst_index]))}",
            )
        )
        if lagged:
            failures.append(
                f"the {'option margins' if mc else 'outputs'} lag the model's own probabilities: "
                f"{what} {_fmt(float(lag.observed[lag.worst_index]))} where {implied} {implies} "
                f"{_fmt(float(lag.expected[lag.worst_index]))} (scale {_fmt(float(x[lag.worst_index]))}, "
                f"{_p(lag.p_value)}): a threshold in the model, not the metric"
            )
    fitted = bt_primary.fitted[0]
    fitted_var = bt_primary.fitted_var[0]
    tr = None
    if (
        items.exact_match is not None
        and items.target_logprob is not None
        and compounds
        and all(np.isfinite(primary.loss))
    ):
        em = [a[np.isfinite(a) & np.isfinite(t)] for a, t in zip(items.exact_match, items.target_logprob)]
        tl = [t[np.isfinite(a) & np.isfinite(t)] for a, t in zip(items.exact_match, items.target_logprob)]
        if all(len(a) for a in em):
            tr = exact_match_transform_test(em, tl, fitted, fitted_var, primary.loss, tolerance=st.transform_tolerance)
            row["transform_kind"] = "exact match from the smooth loss, known target lengths"
    elif not from_records and compounds and all(np.isfinite(primary.loss)):
        n = gd["n_samples"].to_numpy(float) if "n_samples" in gd.columns else np.full(len(y), np.nan)
        tr = _fitted_length_transforms(
            y[None, :],
            lo[None, :],
            hi[None, :],
            n[None, :],
            fitted[None, :],
            fitted_var[None, :],
            z_value(st.level),
            st,
        )[0]
        row["transform_kind"] = "exact match from the smooth loss, one fitted effective length"
    if tr is not None:
        failure = _transform_outcome(row, ev, ev_base, tr, x, d, primary.metric, st)
        if failure:
            failures.append(failure)
    return _final_decision(
        row, ev, d, span, failures, primary.metric, float(bt_primary.alpha[0]), float(bt_primary.break_p[0]), tr
    )


# ----------------------------------------------------------------------------- shared by both paths


def _step_one_decision(
    d: str,
    reason: str,
    span: str,
    n_models: int,
    min_samples: float,
    rise: float,
    flat_share: float,
    percent: bool,
    st: VerdictSettings,
) -> tuple[str, str] | None:
    """(verdict, reason) when step 1 decides (no apparent emergence, or not enough to judge), else None."""
    if reason == _TOO_FEW_MODELS:
        return _INSUFFICIENT, f"{n_models} model(s) with {d}; at least {st.min_models} needed"
    if reason == _NO_INTERVALS:
        return (
            _INSUFFICIENT,
            f"no intervals for {d}: the table has no stderr or n_samples for every "
            "model and there are no records, so no change can be resolved",
        )
    if np.isfinite(min_samples) and min_samples < st.min_samples:
        return (
            _INSUFFICIENT,
            f"a model has only {int(min_samples)} sample(s); at least {st.min_samples} needed",
        )
    if reason == _NOT_RESOLVED:
        return _NONE, f"{d} goes {span}: the change is within the intervals"
    if reason == _SMALL_EFFECT:
        eff = st.min_effect * (100.0 if percent else 1.0)
        return (
            _NONE,
            f"{d} rises only {_fmt(rise)} ({span}), below the minimum effect {_fmt(eff)}",
        )
    if reason == _NO_FLAT_START:
        return (
            _NONE,
            f"{d} ({span}) rises from the start: it stays near its smallest model's value over "
            f"only {_fmt(flat_share, '.2f')} of the log-scale range "
            f"(apparent emergence needs {st.min_flat_share:.2f})",
        )
    return None


def _no_loss_reason(d: str, span: str, channels: list[str], cont: list[str], st: VerdictSettings) -> str:
    """Why a curve that looks emergent gets no verdict: no loss-scale channel, or too few models on one."""
    have = ", ".join(cont)
    why = (
        (
            "no continuous metric on a per-token loss scale (cross-entropy, log-probability, perplexity, the "
            f"outputs' token errors or option margins) among {have}"
        )
        if not channels
        else (f"fewer than {st.min_models} models with a usable per-token loss ({channels[0]})")
    )
    return f"{d} looks emergent ({span}), but there is {why}"


def _break_evidence(
    ev_base: dict[str, Any],
    metric: str,
    alpha: float,
    alpha_se: float,
    p: float,
    z: float,
    kind: str,
    size: float,
    at: float,
    broke: bool,
) -> dict[str, Any]:
    """The evidence row of one power-law break test."""
    return dict(
        ev_base,
        test=_TEST_BREAK,
        metric=metric,
        statistic=z,
        p_value=p,
        outcome=_BREAK if broke else _SMOOTH,
        detail=f"alpha {_fmt(alpha)} ± {_fmt(alpha_se)}; strongest {kind} before scale {_fmt(at)} (size {_fmt(size)})",
    )


def _break_failure(metric: str, kind: str, at: float, p: float) -> str:
    what = "drops" if kind == _STEP else "starts falling faster"
    return f"the per-token loss ({metric}) is not a smooth power law: it {what} before scale {_fmt(at)} ({_p(p)})"


def _transform_outcome(
    row: dict[str, Any],
    ev: list[dict[str, Any]],
    ev_base: dict[str, Any],
    tr: TransformTest,
    x: np.ndarray,
    d: str,
    primary: str,
    st: VerdictSettings,
) -> str | None:
    """Record a transform test in the row and the evidence; the failure text when it fails."""
    row["tests"] += 1
    passed = tr.p_value >= st.test_level
    row.update(
        transform_check=_PASSED if passed else _FAILED,
        transform_p_value=tr.p_value,
        transform_worst_z=tr.worst_z,
        transform_factor=tr.factor,
    )
    worst = int(np.argmax(np.abs(tr.z)))
    ev.append(
        dict(
            ev_base,
            test=_TEST_TRANSFORM,
            metric=primary,
            statistic=tr.chi2,
            p_value=tr.p_value,
            outcome=row["transform_check"],
            detail=f"{row['transform_kind']}: chi2 {_fmt(tr.chi2)} on {tr.dof} df; worst model at scale "
            f"{_fmt(float(x[worst]))}, z {_fmt(tr.worst_z)}; factor {_fmt(tr.factor)}",
        )
    )
    if passed:
        return None
    side = "below" if tr.worst_z < 0 else "above"
    return (
        f"the smooth law of {primary} does not reproduce {d}: the observed curve is "
        f"{side} it by z = {_fmt(tr.worst_z, '.1f')} at scale {_fmt(float(x[worst]))} "
        f"({_p(tr.p_value)})"
    )


def _final_decision(
    row: dict[str, Any],
    ev: list[dict[str, Any]],
    d: str,
    span: str,
    failures: list[str],
    primary: str,
    alpha: float,
    break_p: float,
    tr: TransformTest | None,
) -> VerdictEntry:
    """Steps 2 and 3 done: not explained when anything failed, else explained by the metric."""
    if failures:
        reason = f"{d} looks emergent ({span}), but " + "; and ".join(failures)
        return dict(row, verdict=_NOT_EXPLAINED, reason=reason), ev
    tail = f", and it reproduces {d} (transform {_p(tr.p_value)})" if tr is not None else ""
    reason = (
        f"{d} looks emergent ({span}) while the per-token loss ({primary}) follows a smooth power "
        f"law (alpha {_fmt(alpha)}, no break: {_p(break_p)})" + tail
    )
    return dict(row, verdict=_EXPLAINED, reason=reason), ev


def _fitted_length_transforms(
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    n: np.ndarray,
    fitted: np.ndarray,
    fitted_var: np.ndarray,
    z_: float,
    st: VerdictSettings,
) -> list[TransformTest]:
    """Score tables: accuracy = exp(-L * loss) with one fitted L (the target lengths are unknown),
    for many curves at once (rows; all with the same number of models): every length of the grid
    at once, the first smallest chi-square kept."""
    se_ci = (hi - lo) / (2 * z_)
    loss = np.exp(fitted)[:, None, :]
    L = _LENGTH_GRID[None, :, None]
    pred = np.exp(-L * loss)
    n3 = n[:, None, :]
    var_bin = np.where(np.isfinite(n3) & (n3 > 0), pred * (1 - pred) / np.where(n3 > 0, n3, 1), (se_ci**2)[:, None, :])
    var = var_bin + (pred * L * loss) ** 2 * fitted_var[:, None, :] + st.transform_tolerance**2
    z = (y[:, None, :] - pred) / np.sqrt(np.maximum(var, 1e-18))
    chi2 = np.sum(z**2, axis=2)
    dof = max(y.shape[1] - 1, 1)
    rows = np.arange(len(y))
    best = _first_smallest_indices(chi2)
    zb = z[rows, best]  # rows x models
    worst = np.argmax(np.abs(zb), axis=1)
    c = chi2[rows, best]
    p_value = sps.chi2.sf(c, dof)  # one call for the block: scipy's per-call overhead dominated
    return [
        TransformTest(
            chi2=float(c[r]),
            dof=dof,
            p_value=float(p_value[r]),
            worst_z=float(zb[r, worst[r]]),
            factor=float(_LENGTH_GRID[best[r]]),
            predicted=pred[r, best[r]].copy(),  # a copy: a view would keep the whole block alive
            z=zb[r].copy(),
        )
        for r in range(len(y))
    ]


def _runs(keys: np.ndarray, values: list[Any]) -> dict[int, list[Any]]:
    """``{key: [values of its run]}`` for ``keys`` sorted so that equal keys are adjacent."""
    if not len(keys):
        return {}
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(keys)]])
    return {int(keys[a]): values[a:b] for a, b in zip(starts, ends)}


def _lookup(table_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``keys`` found in ``table_keys``, their rows in ``table_keys``); a key found
    more than once takes its last row (as a join assigned row by row would)."""
    if not len(table_keys) or not len(keys):
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    pos = np.searchsorted(sorted_keys, keys, side="right") - 1
    found = (pos >= 0) & (sorted_keys[np.clip(pos, 0, None)] == keys)
    hit = np.flatnonzero(found)
    return hit, order[pos[hit]]


def _first_smallest_indices(chi2: np.ndarray) -> np.ndarray:
    """Per row, the grid point a running ``if chi2 < best`` keeps: the first smallest (the first
    point when it is NaN, since no comparison with NaN succeeds)."""
    best = np.argmin(np.where(np.isnan(chi2), np.inf, chi2), axis=1)
    return np.where(np.isnan(chi2[:, 0]), 0, best)


# ----------------------------------------------------------------------------- score tables, all at once

# power-law break tests per call (each is profiled over the irreducible-loss grid: 24 fits a row)
_BREAK_CHUNK = 4096
# verdicts per block of the fitted-length transform (a verdicts x lengths x models array)
_TRANSFORM_CHUNK = 1024
_LENGTH_GRID = np.geomspace(0.05, 50, 200)


class _ScoreBatch:
    """The verdicts of many groups of score-table curves, decided together.

    The same rule as :func:`_verdict` for a group without records, step for step: every verdict's
    curve and loss channels are laid out as arrays (one row per verdict, one column per model),
    each test runs on all rows that reach it, verdicts with the same number of models side by
    side, and the rows and reasons are written from the results. ``ordinal`` is each curve point's
    group number in the sorted order of all groups.
    """

    def __init__(self, curves: pd.DataFrame, ordinal: np.ndarray, keys: list[str], st: VerdictSettings) -> None:
        self.st = st
        self.keys = keys
        # only the columns the rule reads (a copy of the whole curves table is most of this
        # batch's memory at 250,000 curves)
        used = [*keys, "metric", "metric_kind", "model", "scale", "value", "ci_low", "ci_high"]
        used += [c for c in ("stderr", "n_samples", "higher_is_better", "chance") if c in curves.columns]
        frame = curves[list(dict.fromkeys(used))].reset_index(drop=True)
        frame["_g"] = ordinal
        self.frame = frame
        # a metric's kind in a group is that of its first row there; verdict groups need both kinds
        first = frame.drop_duplicates(["_g", "metric"])
        disc = first[first["metric_kind"] == MetricKind.DISCONTINUOUS.value]
        cont = first[first["metric_kind"].isin(CONTINUOUS_KINDS)]
        both = np.intersect1d(disc["_g"].unique(), cont["_g"].unique())
        disc = disc[disc["_g"].isin(both)]
        cont = cont[cont["_g"].isin(both)].sort_values(["_g", "metric"], kind="stable")
        self.cont_names: dict[int, list[str]] = _runs(cont["_g"].to_numpy(), cont["metric"].astype(str).tolist())
        # integer codes of the models and metrics: joins on them instead of on strings
        self.model_code = pd.factorize(frame["model"].astype(str))[0].astype(np.int64)
        metric_code, metric_names = pd.factorize(frame["metric"].astype(str))
        self.metric_code = metric_code.astype(np.int64)
        self.metric_names = [str(m) for m in metric_names]
        self.metric_index = {m: i for i, m in enumerate(self.metric_names)}
        verdicts = sorted(zip(disc["_g"].astype(int), disc["metric"].astype(str)))
        self.v_group = np.array([g for g, _ in verdicts], dtype=np.int64)
        self.v_metric = [d for _, d in verdicts]
        self.n_verdicts = len(verdicts)

    # ------------------------------------------------------------------ layout
    def entries(self) -> Iterator[tuple[int, VerdictEntry]]:
        """(group ordinal, (row, evidence)) for every verdict, in group and metric order: the
        tests run now, each row is made when the iterator reaches it."""
        if self.n_verdicts == 0:
            return iter(())
        self._layout()
        self._channels()
        del self.frame  # every step after this works on the verdicts' own arrays
        release_free_memory()  # the joins' temporaries, before the tests' arrays are made
        self._step_one()
        del self.pts
        self._step_two()
        self._step_three()
        release_free_memory()  # the tests' blocks, before the rows are written
        self._as_lists()
        return ((self.v_group_list[v], self._entry(v)) for v in range(self.n_verdicts))

    def _as_lists(self) -> None:
        """The per-verdict and per-channel numbers the rows read, as Python lists: a row reads some
        30 of them, and a float from a list costs a tenth of a NumPy scalar read and converted."""
        self.v_group_list: list[int] = self.v_group.tolist()
        self.lists = {
            name: values.tolist()
            for name, values in (
                ("base", self.ae["base"]),
                ("top", self.ae["top"]),
                ("rise", self.ae["rise"]),
                ("flat_share", self.ae["flat_share"]),
                ("reason", self.ae["reason"]),
                ("counts", self.counts),
                ("starts", self.starts),
                ("min_samples", self.min_samples),
                ("apparent", self.apparent),
                ("floor", self.floor),
                ("rise_resolved", self.rise_resolved),
                ("es_d", self.es_d),
                ("es_c", self.es_c),
                ("jump_d", self.jump_d),
                ("percent", self.percent),
                ("bt_alpha", self.bt_alpha),
                ("bt_alpha_se", self.bt_alpha_se),
                ("bt_p", self.bt_p),
                ("bt_index", self.bt_index),
                ("bt_z", self.bt_z),
                ("bt_kind", self.bt_kind),
                ("bt_size", self.bt_size),
            )
        }

    def _layout(self) -> None:
        """Each verdict's discontinuous curve, models by (scale, model) as :func:`_verdict` sorts them."""
        f = self.frame
        vid = pd.DataFrame({"_g": self.v_group, "metric": self.v_metric, "_v": np.arange(self.n_verdicts)})
        pts = f.assign(_row=np.arange(len(f))).merge(vid, on=["_g", "metric"], how="inner", sort=False)
        pts = pts.sort_values(["_v", "scale", "model"], kind="stable").reset_index(drop=True)
        v = pts["_v"].to_numpy()
        counts = np.bincount(v, minlength=self.n_verdicts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.pts, self.pv, self.counts, self.starts = pts, v, counts, starts
        self.pk = np.arange(len(v)) - starts[v]
        self.x = pts["scale"].to_numpy(dtype=float)
        self.y = pts["value"].to_numpy(dtype=float)
        self.lo = pts["ci_low"].to_numpy(dtype=float)
        self.hi = pts["ci_high"].to_numpy(dtype=float)
        self.model_code_pts = self.model_code[pts["_row"].to_numpy()]
        head = pts.iloc[starts]
        # each verdict's key values, read column by column and all at once (a row of a wide frame,
        # or one value of an Arrow-backed column, is slow to take)
        columns = [head[k].tolist() for k in self.keys]
        self.head_keys: list[dict[str, Any]] = [dict(zip(self.keys, values)) for values in zip(*columns)]
        self.higher = (
            head["higher_is_better"].astype(bool).to_numpy()
            if "higher_is_better" in pts.columns
            else np.ones(self.n_verdicts, dtype=bool)
        )
        self.n_samples = (
            pts["n_samples"].to_numpy(dtype=float) if "n_samples" in pts.columns else np.full(len(v), np.nan)
        )
        # a verdict's points side by side, grouped by its number of models (one bucket per count)
        self.buckets: dict[int, np.ndarray] = {int(k): np.flatnonzero(counts == k) for k in np.unique(counts)}

    def _matrix(self, values: np.ndarray, verdicts: np.ndarray, k: int) -> np.ndarray:
        """The points of ``verdicts`` (all with ``k`` models) as a len(verdicts) x k matrix."""
        idx = self.starts[verdicts][:, None] + np.arange(k)[None, :]
        return values[idx]

    def _channels(self) -> None:
        """Loss-scale channels of each verdict (its group's continuous curves with a per-token loss,
        by preference), on the verdict's models; and the partner metric's values."""
        f = self.frame
        n_pts = len(self.pv)
        n_models = int(self.model_code.max()) + 1 if len(self.model_code) else 1
        n_metrics = max(len(self.metric_index), 1)

        def key(group: np.ndarray, model: np.ndarray, metric: np.ndarray) -> np.ndarray:
            """One integer per (group, model, metric): what the joins below match on."""
            return (group * n_models + model) * n_metrics + metric

        cont = np.flatnonzero(
            f["metric_kind"].isin(CONTINUOUS_KINDS).to_numpy() & f["_g"].isin(np.unique(self.v_group)).to_numpy()
        )
        value = f["value"].to_numpy(dtype=float)
        stderr = f["stderr"].to_numpy(dtype=float) if "stderr" in f.columns else None
        group = f["_g"].to_numpy(dtype=np.int64)
        # the continuous curve points with a per-token loss: (group, model, metric) keys, loss, variance
        rows, losses, variances = [], [], []
        cont_codes = self.metric_code[cont]
        for code in pd.unique(cont_codes):
            sel = cont[cont_codes == code]
            got = per_token_loss_of(
                self.metric_names[int(code)], value[sel], stderr[sel] if stderr is not None else None
            )
            if got is not None:
                rows.append(sel)
                losses.append(got[0])
                variances.append(got[1])
        # per verdict point: its row of the model axis (group, model) once a channel is chosen
        point_group = self.v_group[self.pv]
        point_model = self.model_code_pts
        self.channel_names: dict[int, list[str]] = {}
        if rows:
            ch = np.concatenate(rows)
            ch_loss, ch_var = np.concatenate(losses), np.concatenate(variances)
            ch_group, ch_metric = group[ch], self.metric_code[ch]
            # per group: its channel names by preference
            pairs = pd.DataFrame({"_g": ch_group, "_m": ch_metric}).drop_duplicates()
            pairs["metric"] = [self.metric_names[m] for m in pairs["_m"]]
            pairs["_r"] = pairs["metric"].map({m: _rank(m) for m in self.metric_names})
            pairs = pairs.sort_values(["_g", "_r", "metric"], kind="stable")
            self.channel_names = _runs(pairs["_g"].to_numpy(), pairs["metric"].tolist())
            ch_key = key(ch_group, self.model_code[ch], ch_metric)
        else:
            ch_key = np.array([], dtype=np.int64)
            ch_loss = ch_var = np.array([], dtype=float)
        # per verdict: its channels as pair ids (a verdict's pairs are consecutive), by preference
        pair_verdict: list[int] = []
        pair_metric: list[str] = []
        self.v_channels: list[list[int]] = []
        for v in range(self.n_verdicts):
            names_v = self.channel_names.get(int(self.v_group[v]), [])
            first = len(pair_metric)
            pair_metric.extend(names_v)
            pair_verdict.extend([v] * len(names_v))
            self.v_channels.append(list(range(first, first + len(names_v))))
        self.pair_verdict = np.array(pair_verdict, dtype=np.int64)
        self.pair_metric = pair_metric
        n_pairs = len(pair_metric)
        # pair p's value at its verdict's k-th model: flat index offset[p] + k
        sizes = self.counts[self.pair_verdict] if n_pairs else np.array([], dtype=np.int64)
        self.pair_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        self.pair_loss = np.full(total, np.nan)
        self.pair_var = np.full(total, np.nan)
        if total and len(ch_key):
            # every (pair, model) slot's key, looked up among the channel points
            slot_pair = np.repeat(np.arange(n_pairs), sizes)
            slot_point = self.starts[self.pair_verdict][slot_pair] + (np.arange(total) - self.pair_offset[slot_pair])
            pair_metric_code = np.array([self.metric_index[m] for m in pair_metric], dtype=np.int64)
            slot_key = key(point_group[slot_point], point_model[slot_point], pair_metric_code[slot_pair])
            hit, at = _lookup(ch_key, slot_key)
            self.pair_loss[hit] = ch_loss[at]
            self.pair_var[hit] = ch_var[at]
        # the continuous metric named in the row: the first channel, else the first partner present
        partner = []
        for v in range(self.n_verdicts):
            names_v = self.channel_names.get(int(self.v_group[v]), [])
            if names_v:
                partner.append(names_v[0])
                continue
            cont_names = self.cont_names[int(self.v_group[v])]
            d = self.v_metric[v]
            partner.append(next((p for p in partners_of(d) if p in cont_names), cont_names[0]))
        self.partner = partner
        partner_code = np.array([self.metric_index.get(p, -1) for p in partner], dtype=np.int64)
        all_key = key(group, self.model_code, self.metric_code)
        point_key = key(point_group, point_model, partner_code[self.pv])
        hit, at = _lookup(all_key, np.where(partner_code[self.pv] >= 0, point_key, -1))
        self.partner_value = np.full(n_pts, np.nan)
        self.partner_value[hit] = value[at]
        # the partner is one of the group's metrics (any kind)
        present = np.unique(group * n_metrics + self.metric_code)
        wanted = self.v_group * n_metrics + partner_code
        self.partner_present = (partner_code >= 0) & np.isin(wanted, present)

    # ------------------------------------------------------------------ step 1
    def _step_one(self) -> None:
        st = self.st
        V = self.n_verdicts
        self.canon = [canonical_metric_name(d) for d in self.v_metric]
        entries = [facts(c) for c in self.canon]
        self.compounds = np.array([e is not None and e.compounds for e in entries], dtype=bool)
        floor = np.full(V, np.nan)
        zero = np.array([e is not None and e.zero_floor for e in entries], dtype=bool)
        floor[zero] = 0.0
        if "chance" in self.pts.columns:
            chance = self.pts["chance"]
            for v in np.flatnonzero(~zero):
                c = chance.iloc[self.starts[v] : self.starts[v] + self.counts[v]]
                if c.notna().all():
                    floor[v] = float(c.mean())
        self.floor = floor
        ay = np.where(np.isfinite(self.y), np.abs(self.y), -np.inf)
        top = np.maximum.reduceat(ay, self.starts)
        self.percent = top > 1.5
        self.effect = st.min_effect * np.where(self.percent, 100.0, 1.0)
        self.ae: dict[str, np.ndarray] = {
            name: np.empty(V, dtype=object if name == "reason" else float)
            for name in ("base", "top", "rise", "flat_share", "reason")
        }
        self.apparent = np.zeros(V, dtype=bool)
        self.rise_resolved = np.zeros(V, dtype=bool)
        for k, vs in self.buckets.items():
            ae = apparent_emergence(
                self._matrix(self.x, vs, k),
                self._matrix(self.y, vs, k),
                self._matrix(self.lo, vs, k),
                self._matrix(self.hi, vs, k),
                higher_is_better=self.higher[vs],
                floor=floor[vs],
                min_effect=self.effect[vs],
                floor_band=st.floor_band,
                min_flat_share=st.min_flat_share,
                min_models=st.min_models,
            )
            for name in ("base", "top", "rise", "flat_share", "reason"):
                self.ae[name][vs] = getattr(ae, name)
            self.apparent[vs] = ae.apparent
            self.rise_resolved[vs] = ae.rise_resolved
        # emergence scores and largest step of the discontinuous curve and of its partner
        self.es_d = np.where(self.counts >= 3, grouped_emergence_scores(self.pv, self.x, self.y).score, np.nan)
        self.jump_d = np.where(self.counts >= 2, grouped_jump_sharpness(self.pv, self.x, self.y).jump_share, np.nan)
        okc = ~np.isnan(self.partner_value)
        n_c = np.bincount(self.pv[okc], minlength=V)
        self.es_c = np.full(V, np.nan)
        if okc.any():
            # ids 0..V-1 must all be present: verdicts without partner points get none scored
            ids = np.concatenate([self.pv[okc], np.arange(V)])
            xs = np.concatenate([self.x[okc], np.zeros(V)])
            ys = np.concatenate([self.partner_value[okc], np.zeros(V)])
            keep = np.concatenate([np.ones(int(okc.sum()), dtype=bool), n_c == 0])
            scores = grouped_emergence_scores(ids[keep], xs[keep], ys[keep]).score
            self.es_c = np.where(self.partner_present & (n_c >= 3), scores, np.nan)
        if "n_samples" in self.pts.columns:
            n = self.n_samples
            anyn = np.bitwise_or.reduceat(~np.isnan(n), self.starts) if len(n) else np.zeros(V, dtype=bool)
            mins = np.fmin.reduceat(n, self.starts)
            self.min_samples = np.where(anyn, mins, np.nan)
        else:
            self.min_samples = np.full(V, np.nan)

    # ------------------------------------------------------------------ step 2
    def _step_two(self) -> None:
        st = self.st
        reason = self.ae["reason"]
        small = np.isfinite(self.min_samples) & (self.min_samples < st.min_samples)
        early = np.isin(reason, [NotApparent.TOO_FEW_MODELS.value, NotApparent.NO_INTERVALS.value])
        self.reaches_two = (reason == "") & ~small & ~early
        # usable channels: at least min_models models with a finite positive loss
        n_pairs = len(self.pair_metric)
        if n_pairs:
            good = (np.isfinite(self.pair_loss) & (self.pair_loss > 0)).astype(np.int64)
            n_good = np.add.reduceat(good, self.pair_offset) if len(good) else np.zeros(n_pairs, dtype=np.int64)
            usable_pair = self.reaches_two[self.pair_verdict] & (n_good >= st.min_models)
        else:
            usable_pair = np.zeros(0, dtype=bool)
        self.usable: list[list[int]] = [[p for p in ids if usable_pair[p]] for ids in self.v_channels]
        tested = np.flatnonzero(usable_pair)  # pair ids, in verdict and preference order
        # per pair: its break test (NaN / -1 / "" where untested) and, on its points, the fitted law
        self.bt_alpha = np.full(n_pairs, np.nan)
        self.bt_alpha_se = np.full(n_pairs, np.nan)
        self.bt_p = np.full(n_pairs, np.nan)
        self.bt_index = np.full(n_pairs, -1, dtype=np.int64)
        self.bt_z = np.full(n_pairs, np.nan)
        self.bt_kind = np.full(n_pairs, "", dtype=object)
        self.bt_size = np.full(n_pairs, np.nan)
        self.pair_fitted = np.full(len(self.pair_loss), np.nan)
        self.pair_fitted_var = np.full(len(self.pair_loss), np.nan)
        if not len(tested):
            return
        k_of = self.counts[self.pair_verdict[tested]]
        for k in np.unique(k_of):
            ps = tested[k_of == k]
            idx = self.pair_offset[ps][:, None] + np.arange(k)[None, :]
            x = self._matrix(self.x, self.pair_verdict[ps], int(k))
            loss, var = self.pair_loss[idx], self.pair_var[idx]
            # identical curves (the same loss under several discontinuous metrics) are tested once
            rows = np.ascontiguousarray(np.concatenate([x, loss, var], axis=1))
            as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
            _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
            for a in range(0, len(first), _BREAK_CHUNK):
                sel = first[a : a + _BREAK_CHUNK]
                bt = power_law_break_test(
                    x[sel], loss[sel], var[sel], tolerance=st.loss_tolerance, min_models=st.min_models
                )
                self._store_breaks(ps, idx, inverse, a, sel, bt)

    def _store_breaks(
        self, ps: np.ndarray, idx: np.ndarray, inverse: np.ndarray, a: int, sel: np.ndarray, bt: BreakTest
    ) -> None:
        """Results of unique rows ``a .. a + len(sel)`` for every pair that shares them (``idx``:
        each pair's flat positions)."""
        in_chunk = (inverse >= a) & (inverse < a + len(sel))
        p, u = ps[in_chunk], inverse[in_chunk] - a
        self.bt_alpha[p] = bt.alpha[u]
        self.bt_alpha_se[p] = bt.alpha_se[u]
        self.bt_p[p] = bt.break_p[u]
        self.bt_index[p] = bt.break_index[u]
        self.bt_z[p] = bt.break_z[u]
        self.bt_kind[p] = bt.break_kind[u]
        self.bt_size[p] = bt.break_size[u]
        self.pair_fitted[idx[in_chunk]] = bt.fitted[u]
        self.pair_fitted_var[idx[in_chunk]] = bt.fitted_var[u]

    # ------------------------------------------------------------------ step 3
    def _step_three(self) -> None:
        """The fitted-length transform of exact-match-like curves, against the primary channel's law."""
        st = self.st
        todo = [
            v
            for v in range(self.n_verdicts)
            if self.usable[v]
            and self.compounds[v]
            and bool(np.all(np.isfinite(self._pair_values(self.usable[v][0], self.pair_loss))))
        ]
        self.transform: dict[int, TransformTest] = {}
        if not todo:
            return
        todo_arr = np.array(todo, dtype=np.int64)
        z_ = z_value(st.level)
        for k in np.unique(self.counts[todo_arr]):
            vs = todo_arr[self.counts[todo_arr] == k]
            for a in range(0, len(vs), _TRANSFORM_CHUNK):
                chunk = vs[a : a + _TRANSFORM_CHUNK]
                y = self._matrix(self.y, chunk, int(k))
                lo = self._matrix(self.lo, chunk, int(k))
                hi = self._matrix(self.hi, chunk, int(k))
                n = self._matrix(self.n_samples, chunk, int(k))
                primary = np.array([self.usable[v][0] for v in chunk], dtype=np.int64)
                at = self.pair_offset[primary][:, None] + np.arange(int(k))[None, :]
                fitted, fitted_var = self.pair_fitted[at], self.pair_fitted_var[at]
                for v, tr in zip(chunk, _fitted_length_transforms(y, lo, hi, n, fitted, fitted_var, z_, st)):
                    self.transform[int(v)] = tr

    def _pair_values(self, p: int, values: np.ndarray) -> np.ndarray:
        v = self.pair_verdict[p]
        return values[self.pair_offset[p] : self.pair_offset[p] + self.counts[v]]

    # ------------------------------------------------------------------ rows
    def _entry(self, v: int) -> VerdictEntry:
        """The row and evidence of verdict ``v``, as :func:`_verdict` writes them."""
        st, c = self.st, self.lists
        d = self.v_metric[v]
        base = dict(self.head_keys[v])
        k, start = int(c["counts"][v]), int(c["starts"][v])
        x = self.x[start : start + k]
        ae_base, ae_top = float(c["base"][v]), float(c["top"][v])
        rise, flat_share = float(c["rise"][v]), float(c["flat_share"][v])
        apparent, min_samples = bool(c["apparent"][v]), float(c["min_samples"][v])
        row: dict[str, Any] = dict(
            base,
            discontinuous_metric=d,
            continuous_metric=self.partner[v],
            n_models=k,
            min_samples=min_samples,
            apparent_emergence=apparent,
            floor=float(c["floor"][v]),
            value_first=float(self.y[start]) if k else math.nan,
            value_top=ae_top,
            rise=rise,
            rise_resolved=bool(c["rise_resolved"][v]),
            flat_share=flat_share,
            emergence_score_discontinuous=float(c["es_d"][v]),
            emergence_score_continuous=float(c["es_c"][v]),
            jump_share_discontinuous=float(c["jump_d"][v]),
            **_NOT_YET_TESTED,
        )
        ev: list[dict[str, Any]] = []
        ev_base = dict(base, discontinuous_metric=d)
        reason = str(c["reason"][v])
        span = f"{_fmt(ae_base)} -> {_fmt(ae_top)}"
        ev.append(_apparent_emergence_evidence(ev_base, d, rise, apparent, reason, span, flat_share))
        decided = _step_one_decision(d, reason, span, k, min_samples, rise, flat_share, bool(c["percent"][v]), st)
        if decided is not None:
            return dict(row, verdict=decided[0], reason=decided[1]), ev
        usable = self.usable[v]
        if not usable:
            channel_names = [self.pair_metric[p] for p in self.v_channels[v]]
            return dict(
                row,
                verdict=_INSUFFICIENT,
                reason=_no_loss_reason(d, span, channel_names, self.cont_names[int(self.v_group[v])], st),
            ), ev
        failures: list[str] = []
        primary = usable[0]
        for p in usable:
            alpha, alpha_se, bp = float(c["bt_alpha"][p]), float(c["bt_alpha_se"][p]), float(c["bt_p"][p])
            bi, bz, bk, bs = int(c["bt_index"][p]), float(c["bt_z"][p]), str(c["bt_kind"][p]), float(c["bt_size"][p])
            at = float(x[bi]) if bi >= 0 else math.nan
            broke = bool(math.isfinite(bp) and bp < st.test_level)
            ev.append(_break_evidence(ev_base, self.pair_metric[p], alpha, alpha_se, bp, bz, bk, bs, at, broke))
            row["tests"] += 1
            if p == primary:
                row.update(
                    loss_metric=self.pair_metric[p],
                    loss_alpha=alpha,
                    loss_alpha_se=alpha_se,
                    break_p_value=bp,
                    break_kind=bk,
                    break_at_scale=at,
                    break_size=bs,
                )
            if broke:
                failures.append(_break_failure(self.pair_metric[p], bk, at, bp))
        tr = self.transform.get(v)
        if tr is not None:
            row["transform_kind"] = "exact match from the smooth loss, one fitted effective length"
            failure = _transform_outcome(row, ev, ev_base, tr, x, d, self.pair_metric[primary], st)
            if failure:
                failures.append(failure)
        alpha_primary, bp_primary = float(c["bt_alpha"][primary]), float(c["bt_p"][primary])
        return _final_decision(row, ev, d, span, failures, self.pair_metric[primary], alpha_primary, bp_primary, tr)
