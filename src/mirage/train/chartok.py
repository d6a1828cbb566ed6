"""A character-level tokenizer: one token per character, built offline.

Tiny models in tests, benchmarks and the demo need a tokenizer that exists without a download and
whose tokens are easy to reason about (the target "69" is exactly two tokens). This builds a
``transformers.PreTrainedTokenizerFast`` over a fixed alphabet, with ``<eos>``, ``<pad>`` and
``<unk>`` special tokens, that survives ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import string
from typing import Any

from ..errors import MirageInputError

DEFAULT_ALPHABET = string.digits + string.ascii_letters + " \n" + "+-*=?:.,!;'\"()/%<>[]_#&"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")


def build_char_tokenizer(alphabet: str | None = None) -> Any:
    """Return a fast tokenizer with one token per character of ``alphabet`` (default: digits,
    letters, space, newline and common punctuation). Ids 0, 1, 2 are ``<pad>``, ``<eos>``,
    ``<unk>``; characters follow in alphabet order (duplicates dropped), so the vocabulary is the
    same on every machine. Characters outside the alphabet map to ``<unk>``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # optional heavy (mirage[eval])
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(DEFAULT_ALPHABET if alphabet is None else alphabet))
    if not chars:
        raise MirageInputError("alphabet is empty", "build_char_tokenizer")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # every single character (newline included) is its own pre-token, so no merges ever happen
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters without inserting spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        bos_token="<eos>",
        clean_up_tokenization_spaces=False,
    )
    tok.padding_side = "right"
    return tok
