"""Reading BIG-bench results files (scores_*.json) into the long score table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mirage.errors import MirageInputError
from mirage.io.bigbench_results import read_bigbench_results
from mirage.io.inputs import read_inputs as read_meta_inputs

FIXTURES = Path(__file__).resolve().parent / "fixtures"

BIGBENCH = FIXTURES / "bigbench_results"
ONE = BIGBENCH / "arithmetic" / "results" / "scores_BIG-G-T0_128b.json"


@pytest.fixture(scope="module")
def table():
    return read_bigbench_results([BIGBENCH])


def test_tree_is_read_into_the_long_format(table):
    assert {
        "family",
        "model",
        "params",
        "non_embedding_params",
        "task",
        "subtask",
        "shots",
        "metric",
        "value",
        "preferred",
        "aggregate",
    } <= set(table.columns)
    models = table.groupby("family")["model"].nunique().to_dict()
    assert models == {"BIG-G T=0": 6, "GPT": 5, "BIG-G sparse": 4}
    assert set(table["parent_task"]) == {"arithmetic", "word_sorting", "logical_deduction"}
    assert {
        "multiple_choice_grade",
        "exact_str_match",
        "bleu",
        "rouge1",
        "calibration_multiple_choice_brier_score",
    } <= set(table["metric"])
    # one file: 2 subtasks x 4 metrics + 1 aggregate entry
    assert len(table[table["source"] == str(ONE)]) == 9


def test_values_sizes_and_flags_come_from_the_file(table):
    doc = json.loads(ONE.read_text())
    rows = table[table["source"] == str(ONE)].set_index(["task", "metric"])
    entry = doc["scores"][1]
    assert entry["subtask_description"] == "arithmetic:3_digit_addition"
    assert (
        rows.loc[("arithmetic:3_digit_addition", "exact_str_match"), "value"] == entry["score_dict"]["exact_str_match"]
    )
    assert rows["params"].unique().tolist() == [doc["model"]["total_params"]]
    assert rows["non_embedding_params"].unique().tolist() == [doc["model"]["non_embedding_params"]]
    assert rows.loc[("arithmetic:3_digit_addition", "exact_str_match"), "preferred"]
    assert not rows.loc[("arithmetic:3_digit_addition", "log_likelihood"), "preferred"]
    agg = rows.loc[("arithmetic", "normalized_aggregate_score")]
    assert agg["aggregate"] and agg["preferred"] and agg["subtask"] == ""
    assert not rows.loc[("arithmetic:3_digit_addition", "exact_str_match"), "aggregate"]
    ld = table[table["parent_task"] == "logical_deduction"]
    assert sorted(ld["shots"].unique()) == [0, 1]
    # a name only BIG-bench uses gets its kind here; known names are left to the core registry
    kinds = table.drop_duplicates("metric").set_index("metric")["metric_kind"]
    assert kinds["weighted_log_probabilities"] == "linear"
    assert kinds["multiple_choice_grade"] is None


def test_scale_column_is_selectable():
    inputs = read_meta_inputs([BIGBENCH], scale="non_embedding_params")
    s = inputs.scores
    row = s[(s["family"] == "BIG-G T=0") & (s["model"] == "128b")].iloc[0]
    assert row["scale"] == 134_228_740_096


def _write(tmp_path, doc, name="scores_x.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["model"].pop("total_params"), "model is missing 'total_params'"),
        (lambda d: d["model"].update(total_params=-5), "must not be negative"),
        (
            lambda d: d["model"].update(total_params=0, non_embedding_params=0, flop_matched_non_embedding_params=0),
            "every parameter count is 0",
        ),
        (lambda d: d["scores"][0].pop("score_dict"), "scores[0] is missing 'score_dict'"),
        (lambda d: d["scores"][0].update(preferred_score="bleu"), "preferred_score 'bleu' is not in score_dict"),
        (lambda d: d["scores"][0]["score_dict"].update(exact_str_match="high"), "must be a finite number"),
        (lambda d: d["scores"][0]["score_dict"].update(exact_str_match=float("inf")), "must be a finite number"),
        (lambda d: d["scores"][0].update(number_of_shots=-2), "non-negative integer or -1"),
        (lambda d: d["scores"][0].update(number_of_shots=1.5), "non-negative integer or -1"),
        (lambda d: d.update(scores=[]), "'scores' is empty"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, mutate, message):
    doc = json.loads(ONE.read_text())
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(MirageInputError) as err:
        read_bigbench_results([path])
    assert str(path) in str(err.value) and message in str(err.value)


def test_the_same_score_twice_is_an_error(tmp_path):
    shutil.copy(ONE, tmp_path / "scores_a.json")
    shutil.copy(ONE, tmp_path / "scores_b.json")
    with pytest.raises(MirageInputError, match="is also in"):
        read_bigbench_results([tmp_path])
