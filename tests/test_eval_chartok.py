"""The character tokenizer: one token per character, offline round trip, tiny models load."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from mirage.train.chartok import build_char_tokenizer  # noqa: E402


def test_one_token_per_character_and_lossless_decode():
    tok = build_char_tokenizer()
    text = "Q: What is 57 plus 12?\nA: 69"
    ids = tok(text).input_ids
    assert len(ids) == len(text)
    assert tok.convert_ids_to_tokens(ids) == list(text)
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids


def test_unknown_characters_map_to_unk_and_custom_alphabet():
    tok = build_char_tokenizer("0123456789+=")
    ids = tok("1+x=2").input_ids
    assert ids[2] == tok.unk_token_id and len(ids) == 5
    assert len(tok) == 3 + 12


def test_round_trip_through_save_pretrained(tmp_path):
    from transformers import AutoTokenizer

    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "Is 3*4 = 12? yes."
    assert again(text).input_ids == tok(text).input_ids
    assert again.decode(again(text).input_ids) == text
    assert (again.eos_token_id, again.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)


def test_tiny_gpt2_is_seeded_and_loadable(tmp_path):
    import torch
    from tiny_models import make_tiny_gpt2
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(make_tiny_gpt2(tmp_path / "a", 2, 32, seed=1))
    b = AutoModelForCausalLM.from_pretrained(make_tiny_gpt2(tmp_path / "b", 2, 32, seed=1))
    c = AutoModelForCausalLM.from_pretrained(make_tiny_gpt2(tmp_path / "c", 2, 32, seed=2))
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
