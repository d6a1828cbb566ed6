"""Tiny random-weight causal LMs for tests and benchmarks: built here, never downloaded."""
from __future__ import annotations

from pathlib import Path


def make_tiny_gpt2(dirpath, n_layer: int = 2, n_embd: int = 32, seed: int = 0, n_head: int = 2,
                   n_positions: int = 512, alphabet: str | None = None, init_std: float = 0.02) -> Path:
    """Save a random ``GPT2LMHeadModel`` with the character tokenizer to ``dirpath``.

    Same arguments and seed give bit-identical weights, so tests can rebuild a model at will.
    A larger ``init_std`` makes a random model's greedy outputs varied instead of one repeated
    character, which generation tests need."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from mirage.chartok import build_char_tokenizer

    dirpath = Path(dirpath)
    tok = build_char_tokenizer(alphabet)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        initializer_range=init_std, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(dirpath)
    tok.save_pretrained(dirpath)
    return dirpath
