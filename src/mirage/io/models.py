"""What a log may not say about its model: its scale and its tokenizer.

``--scale-from`` gives scales: a CSV with a ``model`` column and one numeric column per scale
(the one named by ``--scale`` is used, else ``params``, else the only numeric column), or a
family YAML of ``mirage eval`` (its models' ``params``, ``non_embedding_params``, ... keys).
``--tokenizer`` gives the tokens that edit distances and per-token means are counted in: a
tokenizer directory or Hugging Face hub id (read from the local cache only, never downloaded),
or a family YAML (each model's own checkpoint). Without one, text is split into characters and
the readers say so in their notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import MirageInputError
from .family import load_family

Tokenize = Callable[[str], list[str]]


def char_tokens(text: str) -> list[str]:
    """One token per character: the fallback when no tokenizer is given."""
    return list(text)


def _is_family_yaml(ref: str) -> bool:
    return Path(ref).suffix.lower() in (".yaml", ".yml")


# ----------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class ScaleTable:
    """Scales per model name from ``--scale-from`` (a CSV or a family YAML)."""

    source: str
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    def lookup(self, model: str, scale: str, *aliases: str) -> float:
        """The ``scale`` value of ``model`` (or of one of its ``aliases``, e.g. a checkpoint
        path); raises naming the table when it has none."""
        for name in (model, *aliases):
            row = self.by_model.get(str(name))
            if row is None:
                continue
            column = (
                scale
                if scale in row
                else ("params" if "params" in row else (next(iter(row)) if len(row) == 1 else None))
            )
            if column is None:
                raise MirageInputError(f"no {scale!r} column for model {model!r} (has {', '.join(row)})", self.source)
            return row[column]
        raise MirageInputError(f"no scale for model {model!r}", self.source)


def read_scale_table(path: str | Path) -> ScaleTable:
    """Read ``--scale-from FILE`` (CSV or family YAML) with one-line errors naming the file."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise MirageInputError("no such file", f"--scale-from {src}")
    if _is_family_yaml(src):
        return _scales_from_family(path)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MirageInputError("empty file; expected a CSV with a 'model' column and a scale column", src) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        raise MirageInputError(f"malformed CSV: {text[0] if text else type(exc).__name__}", src) from None
    if "model" not in frame.columns:
        raise MirageInputError(f"needs a 'model' column (columns: {', '.join(map(str, frame.columns))})", src)
    if frame.empty:
        raise MirageInputError("CSV has no rows", src)
    numeric = {}
    for col in frame.columns:
        if col == "model":
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.notna().any():
            numeric[col] = values
    if not numeric:
        raise MirageInputError("no numeric scale column besides 'model'", src)
    table: dict[str, dict[str, float]] = {}
    for i, name in enumerate(frame["model"].astype(str)):
        row = {}
        for col, values in numeric.items():
            v = values.iloc[i]
            if pd.isna(v):
                continue
            if not math.isfinite(float(v)) or float(v) <= 0:
                raise MirageInputError(
                    f"row {i + 2}: {col!r} must be a positive number, got {frame[col].iloc[i]!r}", src
                )
            row[col] = float(v)
        if name in table:
            raise MirageInputError(f"row {i + 2}: model {name!r} appears twice", src)
        table[name] = row
    return ScaleTable(src, table)


def _scales_from_family(path: Path) -> ScaleTable:
    spec = load_family(path)
    table: dict[str, dict[str, float]] = {}
    for m in spec.models:
        row = dict(m.scales)
        for key in (m.name, m.ref, Path(m.ref).name):
            table.setdefault(str(key), row)
    return ScaleTable(str(path), table)


# ----------------------------------------------------------------------------- tokenizers


@dataclass
class Tokenizers:
    """Tokenizers per model from ``--tokenizer``; characters when none is given.

    ``describe`` says what the tokens are, for the readers' notes."""

    ref: str | None = None
    _cache: dict[str, Tokenize] = field(default_factory=dict)

    @property
    def given(self) -> bool:
        """Whether ``--tokenizer`` was given."""
        return self.ref is not None

    def describe(self) -> str:
        """What the tokens are, for the readers' notes."""
        if self.ref is None:
            return "characters (no --tokenizer given)"
        return f"tokens of {self.ref}"

    def for_model(self, model: str, *aliases: str) -> Tokenize:
        """The tokenize function for ``model``: ``--tokenizer``'s, the model's own checkpoint
        from a family YAML, or characters."""
        if self.ref is None:
            return char_tokens
        ref = self.ref
        if _is_family_yaml(ref):
            ref = self._family_ref(model, aliases)
        if ref not in self._cache:
            self._cache[ref] = _load_tokenizer(ref, self.ref)
        return self._cache[ref]

    def _family_ref(self, model: str, aliases: tuple[str, ...]) -> str:
        assert self.ref is not None  # only called for a --tokenizer that is a family YAML
        spec = load_family(self.ref)
        for m in spec.models:
            if {m.name, m.ref, Path(m.ref).name} & {model, *aliases}:
                return m.ref
        raise MirageInputError(
            f"no model {model!r} in the family (models: {', '.join(m.name for m in spec.models)})",
            f"--tokenizer {self.ref}",
        )


def _load_tokenizer(ref: str, option: str) -> Tokenize:
    try:
        from transformers import AutoTokenizer  # optional heavy dependency (mirage[eval]), for --tokenizer
    except ImportError:
        raise MirageInputError("needs transformers: pip install 'mirage[eval]'", "--tokenizer") from None
    try:
        # the local cache only: reading results must never download anything
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise MirageInputError(
            f"cannot load tokenizer {ref!r}: {first[0] if first else type(exc).__name__}", f"--tokenizer {option}"
        ) from None

    def tokenize(text: str) -> list[str]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return [str(t) for t in tok.convert_ids_to_tokens(ids)]

    return tokenize
