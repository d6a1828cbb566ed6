"""Tasks: the samples a model family is evaluated on.

Three sources, one spec string (``load_task``):

* ``arithmetic:op=add,digits=2,n=1000,seed=0,shots=3`` -- a built-in generator of the paper's
  Section 3 problems (``op`` in add|sub|mul; ``digits`` per operand; ``n`` problems; ``seed``;
  ``shots`` few-shot exemplars that never repeat the test problem; ``choices`` options in the
  multiple-choice view, BIG-bench style distractors).
* ``path/to/task.json[:shots=2,n=100,seed=0]`` -- a BIG-bench JSON task; ``target`` gives the
  generative view, ``target_scores`` the multiple-choice view.
* ``path/to/file.jsonl[:shots=...]`` -- one JSON object a line with ``prompt``, ``target`` and
  optionally ``choices`` + ``correct_choice`` and ``sample_id``.

Views: ``generate`` (greedy output + target log-probs), ``choice`` (option log-probs + target
log-probs of the right option) or ``both`` (all of it from one prompt; the default when a source
has both). Prompts never end in whitespace: the separator belongs to the target (`` 69``), so
BPE tokenizers see the answer as the word they were trained on (the lm-eval convention).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import MirageInputError

VIEWS = ("generate", "choice", "both")
# Resource bounds, refused up-front with the limit named: every prompt carries all its
# exemplars (shots x n exemplars are held in memory), and digits beyond a hundred are far past
# any model's arithmetic and past Python's 4300-digit limit on printing an integer (issue 12).
MAX_SHOTS = 1000
MAX_DIGITS = 100
MAX_GENERATED = 1_000_000
OPS = {"add": ("plus", lambda a, b: a + b), "sub": ("minus", lambda a, b: a - b), "mul": ("times", lambda a, b: a * b)}


@dataclass(frozen=True)
class Sample:
    """One test item. ``target`` is the exact continuation scored after ``prompt``."""

    sample_id: str
    prompt: str
    target: str
    choices: tuple[str, ...] | None = None
    correct_choice: int | None = None
    output_regex: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Task:
    """A named, ordered set of samples with how to run them."""

    name: str
    samples: tuple[Sample, ...]
    view: str = "generate"
    shots: int = 0
    stop: tuple[str, ...] = ("\n",)
    source: str = ""

    @property
    def generates(self) -> bool:
        """Whether the task's view asks for a greedy generation."""
        return self.view in ("generate", "both")

    @property
    def scores_choices(self) -> bool:
        """Whether the task's view asks for option log-probabilities."""
        return self.view in ("choice", "both")

    def fingerprint(self) -> str:
        """Hash of everything that changes the records: prompts, targets, choices, view, stop."""
        h = hashlib.sha256()
        h.update(json.dumps([self.name, self.view, self.shots, list(self.stop)]).encode())
        for s in self.samples:
            h.update(
                json.dumps([s.sample_id, s.prompt, s.target, s.choices, s.correct_choice, s.output_regex]).encode()
            )
        return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- spec parsing


def load_task(spec: str, view: str | None = None) -> Task:
    """Build a task from a spec string (see the module docstring); bad specs raise
    :class:`MirageInputError` naming the spec."""
    if view is not None and view not in VIEWS:
        raise MirageInputError(f"unknown view {view!r} (expected one of {', '.join(VIEWS)})", "--view")
    spec = spec.strip()
    head, options = _split_spec(spec)
    if head == "arithmetic":
        return arithmetic_task(view=view, **_arith_options(options, spec))
    path = Path(head)
    if not path.exists():
        raise MirageInputError("no such task file (and not a built-in generator such as 'arithmetic:op=add')", head)
    if path.is_dir():
        path = path / "task.json"
        if not path.exists():
            raise MirageInputError("directory has no task.json", head)
    opts = _common_options(options, spec, allowed=("shots", "n", "seed"))
    if path.suffix == ".json":
        return bigbench_task(path, view=view, **opts)
    if path.suffix in (".jsonl", ".ndjson"):
        return jsonl_task(path, view=view, **opts)
    raise MirageInputError("unknown task file type (expected BIG-bench task.json or .jsonl)", str(path))


def _split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``head[:k=v,k=v]``; a colon followed by no ``=`` belongs to the path."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if "=" in tail or head == "arithmetic":
            return head, _parse_options(tail, spec)
    return spec, {}


def _parse_options(text: str, spec: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise MirageInputError(f"option {item!r} is not KEY=VALUE", spec)
        k, v = (x.strip() for x in item.split("=", 1))
        if k in out:
            raise MirageInputError(f"option {k!r} given twice", spec)
        out[k] = v
    return out


def _int_option(
    options: dict, key: str, default: int | None, spec: str, minimum: int, maximum: int | None = None, why: str = ""
) -> int | None:
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        raise MirageInputError(f"option {key}={options[key]!r} is not an integer", spec) from None
    if value < minimum:
        raise MirageInputError(f"option {key} must be >= {minimum}, got {value}", spec)
    if maximum is not None and value > maximum:
        raise MirageInputError(f"option {key} must be <= {maximum:,}{why}, got {value:,}", spec)
    return value


def _common_options(options: dict, spec: str, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise MirageInputError(f"unknown option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})", spec)
    return {
        "shots": _int_option(options, "shots", 0, spec, 0, MAX_SHOTS, " (every prompt carries all its exemplars)"),
        "n": _int_option(options, "n", None, spec, 1),
        "seed": _int_option(options, "seed", 0, spec, 0),
    }


def _arith_options(options: dict, spec: str) -> dict:
    allowed = ("op", "digits", "n", "seed", "shots", "choices")
    opts = _common_options({k: v for k, v in options.items() if k not in ("op", "digits", "choices")}, spec, allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise MirageInputError(f"unknown option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})", spec)
    op = options.get("op", "add")
    if op not in OPS:
        raise MirageInputError(f"unknown op {op!r} (expected add, sub or mul)", spec)
    if opts["n"] is not None and opts["n"] > MAX_GENERATED:
        raise MirageInputError(f"option n must be <= {MAX_GENERATED:,} for the generator, got {opts['n']:,}", spec)
    return {
        "op": op,
        "digits": _int_option(options, "digits", 2, spec, 1, MAX_DIGITS),
        "n": opts["n"] if opts["n"] is not None else 1000,
        "seed": opts["seed"],
        "shots": opts["shots"],
        "n_choices": _int_option(options, "choices", 7, spec, 2),
    }


# ----------------------------------------------------------------------------- arithmetic


def arithmetic_question(a: int, b: int, op: str) -> str:
    """The prompt of one arithmetic problem, in words: a question line, then ``A:``."""
    return f"Q: What is {a} {OPS[op][0]} {b}?\nA:"


def arithmetic_task(
    op: str = "add",
    digits: int = 2,
    n: int = 1000,
    seed: int = 0,
    shots: int = 0,
    n_choices: int = 7,
    view: str | None = None,
) -> Task:
    """``n`` distinct problems with ``digits``-digit operands (no leading zeros), each prompt
    preceded by ``shots`` solved exemplars drawn from other problems; seeded."""
    if op not in OPS:
        raise MirageInputError(f"unknown op {op!r} (expected add, sub or mul)", "arithmetic")
    for key, value, top in (("digits", digits, MAX_DIGITS), ("n", n, MAX_GENERATED), ("shots", shots, MAX_SHOTS)):
        if not 0 <= value <= top or (key != "shots" and value < 1):
            raise MirageInputError(
                f"option {key} must be between {0 if key == 'shots' else 1} and {top:,}, got {value:,}", "arithmetic"
            )
    view = view or "both"
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    space = (hi - lo + 1) ** 2
    if n > space - shots:
        raise MirageInputError(
            f"only {space} distinct {digits}-digit problems exist; n={n} with shots={shots} is too many", "arithmetic"
        )
    rng = random.Random(f"arithmetic:{op}:{digits}:{seed}")
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    while len(pairs) < n:
        pair = (rng.randint(lo, hi), rng.randint(lo, hi))
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    fn = OPS[op][1]
    samples = []
    for i, (a, b) in enumerate(pairs):
        answer = fn(a, b)
        shots_text = ""
        if shots:
            exemplars: list[tuple[int, int]] = []
            chosen: set[tuple[int, int]] = {(a, b)}  # never the test problem itself, never twice
            while len(exemplars) < shots:  # a set, not the list: linear in shots, same draws
                ex = (rng.randint(lo, hi), rng.randint(lo, hi))
                if ex not in chosen:
                    chosen.add(ex)
                    exemplars.append(ex)
            shots_text = "".join(f"{arithmetic_question(x, y, op)} {fn(x, y)}\n\n" for x, y in exemplars)
        choices = correct = None
        if view in ("choice", "both"):
            options = _numeric_distractors(answer, digits, n_choices, rng)
            correct = options.index(str(answer))
            choices = tuple(f" {o}" for o in options)
        samples.append(
            Sample(
                sample_id=f"{i:05d}",
                prompt=shots_text + arithmetic_question(a, b, op),
                target=f" {answer}",
                choices=choices,
                correct_choice=correct,
                output_regex=r"[-+]?\d+",
                metadata=MappingProxyType({"a": a, "b": b, "answer_digits": len(str(abs(answer)))}),
            )
        )
    name = f"arithmetic_{digits}_digit_{op}"
    return Task(
        name=_view_name(name, view, "both"),
        samples=tuple(samples),
        view=view,
        shots=shots,
        stop=("\n",),
        source=f"arithmetic:op={op},digits={digits},n={n},seed={seed},shots={shots}",
    )


def _numeric_distractors(answer: int, digits: int, k: int, rng: random.Random) -> list[str]:
    """BIG-bench arithmetic options: the answer, near misses, numbers of other magnitudes and two
    words ('banana', 'house'), shuffled."""
    options = [str(answer)]
    words = ["banana", "house"][: max(0, k - 3)]
    candidates = [answer + d for d in (1, -1, 10, -10, 2, -2)] + [answer * 10, answer // 10 or answer + 3]
    rng.shuffle(candidates)
    for c in candidates:
        if len(options) >= k - len(words) - 1:
            break
        if str(c) not in options:
            options.append(str(c))
    while len(options) < k - len(words):
        c = rng.randint(0, 10 ** (digits + rng.randint(0, 2)))
        if str(c) not in options:
            options.append(str(c))
    options += words
    rng.shuffle(options)
    return options


# ----------------------------------------------------------------------------- BIG-bench

# BIG-bench JsonTask defaults, used when task.json does not set them
_BB_INPUT_PREFIX, _BB_OUTPUT_PREFIX, _BB_SEPARATOR = "\nQ: ", "\nA: ", "\n"


def bigbench_task(
    path: str | Path, view: str | None = None, shots: int = 0, n: int | None = None, seed: int = 0
) -> Task:
    """A BIG-bench ``task.json``: ``input_prefix + input + output_prefix`` is the prompt (the
    output prefix's trailing spaces move to the target), ``target`` (first if a list) the
    generative target, ``target_scores`` the options (correct = highest score). ``shots``
    exemplars are other examples of the file, drawn with ``seed``; ``n`` keeps the first n
    examples after a seeded shuffle (all, in file order, when not given)."""
    path = Path(path)
    src = str(path)
    data = _read_json(path)
    examples = data.get("examples")
    if not isinstance(examples, list) or not examples:
        subtasks = [p.parent.name for p in path.parent.glob("*/task.json")]
        hint = f"; it has subtasks: {', '.join(sorted(subtasks)[:8])}" if subtasks else ""
        raise MirageInputError(f"no 'examples' list{hint}", src)
    in_prefix = data.get("example_input_prefix", _BB_INPUT_PREFIX)
    out_prefix = data.get("example_output_prefix", _BB_OUTPUT_PREFIX)
    separator = data.get("few_shot_example_separator", _BB_SEPARATOR)
    for key, value in (
        ("example_input_prefix", in_prefix),
        ("example_output_prefix", out_prefix),
        ("few_shot_example_separator", separator),
    ):
        if not isinstance(value, str):
            raise MirageInputError(f"{key!r} must be a string, got {_json_type(value)} {value!r}", src)
    regex = data.get("output_regex")
    if regex is not None:
        _check_regex(regex, src)
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict):
            raise MirageInputError(
                f"example {i} must be an object with 'input' and 'target', got {_json_type(ex)}", src
            )
        scores = ex.get("target_scores")
        if scores is not None:
            if not isinstance(scores, dict):
                raise MirageInputError(
                    f"example {i}: 'target_scores' must be an object of option: score, got {_json_type(scores)}", src
                )
            for option, score in scores.items():
                if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                    raise MirageInputError(
                        f"example {i}: target_scores[{option!r}] must be a finite number, got {score!r}", src
                    )
    has_gen = all(_bb_target(ex) is not None for ex in examples)
    has_choice = all(isinstance(ex.get("target_scores"), dict) and ex["target_scores"] for ex in examples)
    default_view = "both" if has_gen and has_choice else "generate" if has_gen else "choice" if has_choice else None
    if default_view is None:
        raise MirageInputError("examples need a 'target' or 'target_scores' in every example", src)
    view = view or default_view
    if view in ("generate", "both") and not has_gen:
        raise MirageInputError(f"view {view!r} needs a 'target' in every example", src)
    if view in ("choice", "both") and not has_choice:
        raise MirageInputError(f"view {view!r} needs 'target_scores' in every example", src)
    # the space that ends "\nA: " belongs to the answer, so tokenizers see " 1000"
    stripped_prefix = out_prefix.rstrip(" ")
    delimiter = out_prefix[len(stripped_prefix) :]
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str):
            raise MirageInputError(f"example {i} has no string 'input'", src)

    def formatted(ex: dict) -> tuple[str, str, tuple[str, ...] | None, int | None]:
        prompt = f"{in_prefix}{ex['input']}{stripped_prefix}"
        choices = correct = None
        if view in ("choice", "both"):
            scores = ex["target_scores"]
            names = list(scores)
            choices = tuple((delimiter or " ") + c for c in names)
            values = [float(scores[c]) for c in names]
            correct = max(range(len(values)), key=lambda j: values[j])
        if view == "choice":
            assert choices is not None and correct is not None  # the choice view needs target_scores
            return prompt, choices[correct], choices, correct
        gen = _bb_target(ex)
        target = (delimiter or " ") + str(gen).lstrip(" ")
        return prompt, target, choices, correct

    order = list(range(len(examples)))
    if n is not None:
        random.Random(f"bigbench:{seed}").shuffle(order)
        order = sorted(order[:n])
    rng = random.Random(f"bigbench-shots:{seed}")
    samples = []
    for i in order:
        prompt, target, choices, correct = formatted(examples[i])
        if shots:
            pool = [j for j in range(len(examples)) if j != i]
            if len(pool) < shots:
                raise MirageInputError(f"{shots} shots need more than {len(examples)} examples", src)
            shot_text = ""
            for j in rng.sample(pool, shots):
                p, t, _, _ = formatted(examples[j])
                shot_text += p + t + separator
            prompt = shot_text + prompt
        samples.append(
            Sample(
                sample_id=f"{i:05d}",
                prompt=prompt.lstrip("\n"),
                target=target,
                choices=choices,
                correct_choice=correct,
                output_regex=regex,
            )
        )
    name = str(data.get("name") or path.parent.name)
    return Task(
        name=_view_name(name, view, default_view),
        samples=tuple(samples),
        view=view,
        shots=shots,
        stop=("\n",),
        source=src,
    )


def _bb_target(ex: dict[str, Any]) -> str | int | float | None:
    t = ex.get("target")
    if isinstance(t, list):
        t = t[0] if t else None
    return t if isinstance(t, (str, int, float)) and not isinstance(t, bool) else None


# ----------------------------------------------------------------------------- JSONL


def jsonl_task(path: str | Path, view: str | None = None, shots: int = 0, n: int | None = None, seed: int = 0) -> Task:
    """Plain JSONL: ``prompt`` and ``target`` strings, optional ``choices`` (list of strings) with
    ``correct_choice`` (index), optional ``sample_id`` and ``output_regex``. ``target`` is scored
    exactly as written after ``prompt``: put the separating space in it (``" 69"``)."""
    path = Path(path)
    src = str(path)
    rows = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise MirageInputError(
                    f"line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", src
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MirageInputError(f"line {lineno}: malformed JSON ({exc.msg})", src) from None
            if not isinstance(row, dict):
                raise MirageInputError(f"line {lineno}: expected a JSON object", src)
            rows.append((lineno, row))
    if not rows:
        raise MirageInputError("no samples", src)
    samples, ids = [], set()
    for lineno, row in rows:
        where = f"line {lineno}"
        prompt, target = row.get("prompt"), row.get("target")
        if not isinstance(prompt, str) or not isinstance(target, str) or not target:
            raise MirageInputError(f"{where}: needs string 'prompt' and non-empty string 'target'", src)
        choices, correct = row.get("choices"), row.get("correct_choice")
        if choices is not None:
            if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
                raise MirageInputError(f"{where}: 'choices' must be a list of at least 2 non-empty strings", src)
            if not isinstance(correct, int) or isinstance(correct, bool) or not 0 <= correct < len(choices):
                raise MirageInputError(f"{where}: 'correct_choice' must be an index into 'choices'", src)
            choices = tuple(choices)
        sid = str(row.get("sample_id", f"{lineno - 1:05d}"))
        if sid in ids:
            raise MirageInputError(f"{where}: duplicate sample_id {sid!r}", src)
        ids.add(sid)
        regex = row.get("output_regex")
        if regex is not None:
            _check_regex(regex, src)
        samples.append(Sample(sid, prompt, target, choices, correct if choices else None, regex))
    has_choice = all(s.choices for s in samples)
    default_view = "both" if has_choice else "generate"
    view = view or default_view
    if view in ("choice", "both") and not has_choice:
        raise MirageInputError(f"view {view!r} needs 'choices' and 'correct_choice' on every line", src)
    if view == "generate":
        samples = [Sample(s.sample_id, s.prompt, s.target, None, None, s.output_regex) for s in samples]
    if n is not None and n < len(samples):
        keep = sorted(random.Random(f"jsonl:{seed}").sample(range(len(samples)), n))
        pool, samples = samples, [samples[i] for i in keep]
    else:
        pool = samples
    if shots:
        if len(pool) <= shots:
            raise MirageInputError(f"{shots} shots need more than {len(pool)} samples", src)
        rng = random.Random(f"jsonl-shots:{seed}")
        samples = [
            Sample(
                s.sample_id,
                "".join(e.prompt + e.target + "\n\n" for e in rng.sample([p for p in pool if p is not s], shots))
                + s.prompt,
                s.target,
                s.choices,
                s.correct_choice,
                s.output_regex,
            )
            for s in samples
        ]
    return Task(
        name=_view_name(path.stem, view, default_view),
        samples=tuple(samples),
        view=view,
        shots=shots,
        stop=("\n",),
        source=src,
    )


# ----------------------------------------------------------------------------- helpers


def _view_name(name: str, view: str, default_view: str) -> str:
    """A non-default view gets its own task name, so two views never collide in one store."""
    return name if view == default_view else f"{name}.{view}"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MirageInputError(f"malformed JSON ({exc.msg}, line {exc.lineno})", str(path)) from None
    except UnicodeDecodeError:
        raise MirageInputError("not UTF-8 text", str(path)) from None
    if not isinstance(data, dict):
        raise MirageInputError("expected a JSON object", str(path))
    return data


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _check_regex(pattern: str, src: str) -> None:
    try:
        re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise MirageInputError(f"invalid output_regex {pattern!r}: {exc}", src) from None
