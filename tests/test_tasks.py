"""Task sources: the arithmetic generator, real BIG-bench task.json files and JSONL."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES

from mirage.errors import MirageInputError
from mirage.io.tasks import arithmetic_task, load_task

BIGBENCH = FIXTURES / "bigbench"  # copies of shared/data/bigbench files
needs_bigbench = pytest.mark.skipif(not BIGBENCH.is_dir(), reason="shared BIG-bench data not present")
QUESTION = re.compile(r"Q: What is (\d+) (plus|minus|times) (\d+)\?\nA:")
OPS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_arithmetic_answers_are_right_and_exemplars_never_repeat_the_item(op):
    task = load_task(f"arithmetic:op={op},digits=2,n=40,seed=1,shots=3")
    assert len(task.samples) == 40 and task.shots == 3 and task.view == "both"
    items = set()
    for s in task.samples:
        found = QUESTION.findall(s.prompt)
        assert len(found) == 4  # 3 exemplars + the item
        for a, _word, b in found:
            assert len(a) == 2 and len(b) == 2
        a, word, b = found[-1]
        assert s.prompt.endswith(f"Q: What is {a} {word} {b}?\nA:")
        assert s.target == f" {OPS[word](int(a), int(b))}"
        assert (a, b) not in {(x, y) for x, _, y in found[:-1]}
        for x, w, y in found[:-1]:  # exemplars carry their right answers
            assert f"Q: What is {x} {w} {y}?\nA: {OPS[w](int(x), int(y))}\n\n" in s.prompt
        items.add((a, b))
        assert s.choices[s.correct_choice] == s.target and len(set(s.choices)) == 7
        assert re.search(s.output_regex, s.target).group(0) == s.target.strip()
    assert len(items) == 40  # distinct problems


def test_arithmetic_is_seeded():
    a = arithmetic_task("mul", 2, n=20, seed=5, shots=2)
    b = arithmetic_task("mul", 2, n=20, seed=5, shots=2)
    c = arithmetic_task("mul", 2, n=20, seed=6, shots=2)
    assert a == b and a.fingerprint() == b.fingerprint()
    assert a.samples != c.samples and a.fingerprint() != c.fingerprint()


def test_arithmetic_views_name_the_task():
    gen = load_task("arithmetic:op=add,digits=1,n=5", view="generate")
    assert gen.name == "arithmetic_1_digit_add.generate" and all(s.choices is None for s in gen.samples)
    assert load_task("arithmetic:op=add,digits=1,n=5").name == "arithmetic_1_digit_add"


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("arithmetic:op=div", "unknown op"),
        ("arithmetic:digits=x", "not an integer"),
        ("arithmetic:n=0", "must be >= 1"),
        ("arithmetic:colour=red", "unknown option"),
        ("arithmetic:op=add,digits=1,n=100,shots=1", "distinct"),
        ("arithmetic:digits", "not KEY=VALUE"),
        ("no/such/task.json", "no such task file"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, needle):
    with pytest.raises(MirageInputError, match=needle):
        load_task(spec)


def test_unknown_view_is_an_error():
    with pytest.raises(MirageInputError, match="unknown view"):
        load_task("arithmetic", view="sideways")


@needs_bigbench
def test_real_bigbench_arithmetic_file_both_views():
    path = BIGBENCH / "arithmetic" / "2_digit_multiplication" / "task.json"
    raw = json.loads(path.read_text())
    task = load_task(f"{path}:n=12,seed=0")
    assert task.name == "2_digit_multiplication" and task.view == "both" and len(task.samples) == 12
    for s in task.samples:
        ex = raw["examples"][int(s.sample_id)]
        assert s.prompt == f"Q: {ex['input']}\nA:"  # BIG-bench default prefixes, answer space moved to the target
        assert s.target == " " + ex["target"]
        assert [c.strip() for c in s.choices] == list(ex["target_scores"])
        assert s.choices[s.correct_choice] == s.target
        assert s.output_regex == raw["output_regex"]
    choice = load_task(str(path), view="choice")
    assert choice.name.endswith(".choice") and len(choice.samples) == len(raw["examples"])


@needs_bigbench
def test_bigbench_prefixes_separator_and_shots():
    path = BIGBENCH / "modified_arithmetic" / "three_digit_addition_plus_one" / "task.json"
    task = load_task(f"{path}:shots=2,n=5,seed=3")
    assert task.view == "generate"
    s = task.samples[0]
    # example_input_prefix '' and output prefix ' ' with separator '\n\n'
    assert s.prompt.count("\n\n") == 2 and s.prompt.endswith("->") and s.target.startswith(" ")
    with pytest.raises(MirageInputError, match="target_scores"):
        load_task(str(path), view="choice")


@needs_bigbench
def test_bigbench_directory_without_examples_names_subtasks():
    with pytest.raises(MirageInputError, match="subtasks"):
        load_task(str(BIGBENCH / "arithmetic"))


def test_jsonl_task_and_its_errors(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt": "2+2=", "target": " 4", "choices": [" 4", " 5"], "correct_choice": 0},
                {"prompt": "3+3=", "target": " 6", "choices": [" 6", " 7"], "correct_choice": 0, "sample_id": "six"},
                {"prompt": "1+1=", "target": " 2", "choices": [" 3", " 2"], "correct_choice": 1},
            ]
        )
        + "\n"
    )
    task = load_task(f"{good}:shots=1")
    assert task.view == "both" and [s.sample_id for s in task.samples] == ["00000", "six", "00002"]
    assert task.samples[0].prompt.endswith("\n\n2+2=") and task.samples[0].prompt.count("=") == 2
    assert load_task(str(good), view="generate").samples[0].choices is None
    cases = {
        '{"prompt": "x"}\n': "non-empty string 'target'",
        '{"prompt": "x", "target": "y", "choices": ["a", "b"], "correct_choice": 2}\n': "index into 'choices'",
        "not json\n": "malformed JSON",
        "": "no samples",
    }
    for i, (text, needle) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.jsonl"
        bad.write_text(text)
        with pytest.raises(MirageInputError, match=needle):
            load_task(str(bad))


def test_exemplar_draws_are_linear_and_unchanged():
    """Few-shot exemplars are drawn with a set (linear in shots) and the very same draws as the
    list-based version before it: these fingerprints were computed with mirage 0.1's tasks.py, so
    every store written before keeps its shards."""
    from mirage.io.tasks import load_task

    assert load_task("arithmetic:op=add,digits=2,n=50,seed=3,shots=5").fingerprint() == "b1db44c35fe8388b"
    assert load_task("arithmetic:op=mul,digits=1,n=20,shots=40").fingerprint() == "6a224a3cdcd56d61"
    task = load_task("arithmetic:digits=3,n=2,shots=1000")  # the old quadratic draw took minutes per prompt here
    assert all(s.prompt.count("Q: ") == 1001 for s in task.samples)


def test_jsonl_with_a_byte_order_mark_is_read():
    import tempfile
    from pathlib import Path

    from mirage.io.tasks import load_task

    path = Path(tempfile.mkdtemp()) / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "1+1=", "target": " 2"}\n')
    assert load_task(str(path)).samples[0].target == " 2"
