r"""When a generated answer counts as right: the one definition of exact match on records.

An output matches its target when, stripped of surrounding whitespace and, where the record has
an answer pattern (``output_regex``), reduced to the pattern's first match (its group 1 if it has
groups), it equals the stripped target. ``mirage analyze`` scores ``exact_match`` with it, and
``mirage eval --until-pass`` decides with it whether a sample passed.

>>> answer_matches(" 69\n", " 69")
True
>>> answer_matches("The answer is 42.", "42", re.compile(r"(\d+)"))
True
>>> answer_matches("6", " 69")
False
"""

from __future__ import annotations

import re


def normalise_answer(text: str | None, regex: re.Pattern[str] | None = None) -> str | None:
    """``text`` stripped and, with ``regex``, reduced to its first match ("" when nothing matches)."""
    if text is None:
        return None
    text = text.strip()
    if regex is not None:
        m = regex.search(text)
        if m is None:
            return ""
        text = (m.group(1) if m.groups() else m.group(0)).strip()
    return text


def answer_matches(output: str | None, target: str | None, regex: re.Pattern[str] | None = None) -> bool:
    """Whether ``output`` is an exact match of ``target`` (the target is only stripped: it is the
    reference answer, not text to search)."""
    if output is None:
        return False
    return normalise_answer(output, regex) == (target or "").strip()


def may_still_match(prefix: str, target: str) -> bool:
    """Whether an output that begins with ``prefix`` (no pattern) can still match ``target``:
    ``prefix`` stripped on the left is a beginning of the stripped target, or is the target followed
    by whitespace. A sampler stops drawing a sample once this is false."""
    head = prefix.lstrip()
    want = target.strip()
    return want.startswith(head) or (head.startswith(want) and not head[len(want) :].strip())
