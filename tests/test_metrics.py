import math

import numpy as np
import pytest

from mirage.errors import MirageInputError
from mirage.metrics import METRICS, compute_sample_metrics, metric_kind, parse_kind_overrides
from mirage.schema.records import records_from_rows


def row(i, **kw):
    base = dict(
        family="f",
        model="m",
        scale=1e6,
        task="t",
        sample_id=str(i),
        prompt="Q:",
        target="123",
        output="123",
        target_tokens=["1", "2", "3"],
        output_tokens=["1", "2", "3"],
        target_logprobs=[-0.1, -0.2, -0.3],
        choices=["123", "124", "125"],
        choice_logprobs=[-1.0, -2.0, -3.0],
        choice_lengths=[3, 3, 3],
        correct_choice=0,
    )
    base.update(kw)
    return base


def levenshtein(a, b):  # textbook dynamic programme, independent of rapidfuzz
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_every_metric_against_an_independent_computation():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        L = int(rng.integers(1, 7))
        tgt = list(rng.choice(list("0123456789"), L))
        out = list(rng.choice(list("0123456789"), int(rng.integers(0, 8))))
        if i % 4 == 0:
            out = list(tgt)
        lps = list(np.log(rng.uniform(0.05, 1.0, L)))
        clp = list(rng.normal(-5, 2, 4))
        rows.append(
            row(
                i,
                target="".join(tgt),
                output=" " + "".join(out) + "\n",
                target_tokens=tgt,
                output_tokens=out,
                target_logprobs=lps,
                choice_logprobs=clp,
                choices=list("abcd"),
                choice_lengths=[1] * 4,
                correct_choice=int(rng.integers(4)),
            )
        )
    table = records_from_rows(rows)
    m = compute_sample_metrics(table)
    for r, (_, got) in zip(rows, m.iterrows()):
        assert got["exact_match"] == float(r["output"].strip() == r["target"])
        assert got["token_edit_distance"] == levenshtein(r["output_tokens"], r["target_tokens"])
        assert got["char_edit_distance"] == levenshtein(r["output"].strip(), r["target"])
        assert got["target_logprob"] == pytest.approx(sum(r["target_logprobs"]))
        assert got["target_mean_logprob"] == pytest.approx(np.mean(r["target_logprobs"]))
        assert got["target_prob"] == pytest.approx(math.exp(sum(r["target_logprobs"])))
        clp = np.array(r["choice_logprobs"])
        assert got["multiple_choice_grade"] == float(np.argmax(clp) == r["correct_choice"])
        q = np.exp(clp - clp.max()) / np.exp(clp - clp.max()).sum()
        onehot = np.eye(4)[r["correct_choice"]]
        assert got["brier_score"] == pytest.approx(np.sum((q - onehot) ** 2))
        assert got["target_length"] == len(r["target_tokens"])


def test_answer_regex_extracts_before_exact_match():
    rows = [
        row(0, output="The answer is 123."),
        row(1, output="The answer is 124."),
        row(2, output="123", output_regex=r"(\d+)"),
    ]
    plain = compute_sample_metrics(records_from_rows(rows))
    assert plain["exact_match"].tolist()[:2] == [0.0, 0.0]
    extracted = compute_sample_metrics(records_from_rows(rows), answer_regex=r"answer is (\d+)")
    assert extracted["exact_match"].tolist()[:2] == [1.0, 0.0]


def test_per_record_output_regex_is_honoured():
    rows = [row(0, output="=> 123 <=", output_regex=r"\d+"), row(1, output="=> 123 <=")]
    got = compute_sample_metrics(records_from_rows(rows))["exact_match"].tolist()
    assert got == [1.0, 0.0]


def test_multiple_choice_ties_count_as_wrong():
    m = compute_sample_metrics(records_from_rows([row(0, choice_logprobs=[-1.0, -1.0, -3.0])]))
    assert m["multiple_choice_grade"].iloc[0] == 0.0


def test_brier_is_stable_for_very_negative_logprobs():
    m = compute_sample_metrics(records_from_rows([row(0, choice_logprobs=[-1000.0, -1001.0, -1200.0])]))
    q0 = 1 / (1 + math.exp(-1))
    assert m["brier_score"].iloc[0] == pytest.approx((1 - q0) ** 2 + (1 - q0) ** 2, rel=1e-9)


def test_missing_outputs_give_nan_not_zero():
    rows = [row(0), row(1, output=None, output_tokens=None)]
    m = compute_sample_metrics(records_from_rows(rows))
    assert m["exact_match"].iloc[0] == 1.0 and math.isnan(m["exact_match"].iloc[1])
    assert math.isnan(m["token_edit_distance"].iloc[1])


def test_only_supported_metrics_are_computed():
    rows = [row(0, choices=None, choice_logprobs=None, choice_lengths=None, correct_choice=None)]
    m = compute_sample_metrics(records_from_rows(rows))
    assert "multiple_choice_grade" not in m.columns and "exact_match" in m.columns


def test_unknown_requested_metric_is_an_error():
    with pytest.raises(MirageInputError, match="unknown metric"):
        compute_sample_metrics(records_from_rows([row(0)]), names=["bogus"])


def test_metric_kinds_and_directions():
    assert metric_kind("acc") == ("discontinuous", True)
    assert metric_kind("acc,none") == ("discontinuous", True)
    assert metric_kind("Exact_Str_Match") == ("discontinuous", True)
    assert metric_kind("multiple_choice_grade")[0] == "discontinuous"
    assert metric_kind("ppl") == ("linear", False)
    assert metric_kind("brier_score") == ("linear", False)
    assert metric_kind("bleu") == ("linear", True)
    assert metric_kind("made_up_metric") is None
    assert metric_kind("made_up_metric", {"made_up_metric": "linear"})[0] == "linear"
    for m in METRICS.values():
        assert m.kind in ("discontinuous", "nonlinear", "linear")


def test_kind_override_parsing_errors():
    assert parse_kind_overrides(["foo=linear"]) == {"foo": "linear"}
    with pytest.raises(MirageInputError):
        parse_kind_overrides(["foo"])
    with pytest.raises(MirageInputError):
        parse_kind_overrides(["foo=smooth"])
