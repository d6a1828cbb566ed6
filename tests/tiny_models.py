"""Tiny random-weight causal LMs for tests and benchmarks: built here, never downloaded."""

from __future__ import annotations

from pathlib import Path


def make_tiny_gpt2(
    dirpath,
    n_layer: int = 2,
    n_embd: int = 32,
    seed: int = 0,
    n_head: int = 2,
    n_positions: int = 512,
    alphabet: str | None = None,
    init_std: float = 0.02,
) -> Path:
    """Save a random ``GPT2LMHeadModel`` with the character tokenizer to ``dirpath``.

    Same arguments and seed give bit-identical weights, so tests can rebuild a model at will.
    A larger ``init_std`` makes a random model's greedy outputs varied instead of one repeated
    character, which generation tests need."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from mirage.train.chartok import build_char_tokenizer

    dirpath = Path(dirpath)
    tok = build_char_tokenizer(alphabet)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        initializer_range=init_std,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(dirpath)
    tok.save_pretrained(dirpath)
    return dirpath


def make_tiny_bpe_gpt2(
    dirpath,
    n_layer: int = 2,
    n_embd: int = 32,
    seed: int = 0,
    vocab_size: int = 160,
    n_positions: int = 256,
    init_std: float = 0.1,
    train_steps: int = 0,
) -> Path:
    """A tiny random GPT-2 with a byte-level BPE tokenizer: GPT-2's pre-tokenizer, merges trained
    here on arithmetic questions, and an alphabet of printable ASCII only, so
    that greedy outputs are printable text (with all 256 bytes a random model emits pieces of
    multi-byte characters, which servers and transformers render differently). Built for the
    llama.cpp tests: llama.cpp needs a BPE vocabulary with merges, and its converter reads
    ``n_ctx`` from the config. ``init_std`` as in :func:`make_tiny_gpt2`; ``train_steps`` > 0
    trains it briefly on additions. Same arguments give the same model."""
    import random
    import string

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    from mirage.io.tasks import arithmetic_question

    rng = random.Random(seed)
    texts = []
    for _ in range(2000):
        a, b = rng.randrange(10, 100), rng.randrange(10, 100)
        texts.append(f"{arithmetic_question(a, b, 'add')} {a + b}\n")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    # printable ASCII in GPT-2's byte-to-character mapping (space is "Ġ", newline "Ċ")
    ascii_alphabet = list(string.ascii_letters + string.digits + string.punctuation) + ["Ġ", "Ċ"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False, initial_alphabet=ascii_alphabet
    )
    core.train_from_iterator(texts, trainer)
    tok = GPT2TokenizerFast(
        tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_ctx=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        initializer_range=init_std,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if train_steps:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        eos = tok.eos_token_id
        model.train()
        for step in range(train_steps):
            batch = [[eos] + tok(texts[(step * 16 + j) % len(texts)]).input_ids for j in range(16)]
            width = max(len(x) for x in batch)
            ids = torch.tensor([x + [eos] * (width - len(x)) for x in batch])
            labels = torch.tensor([x + [-100] * (width - len(x)) for x in batch])
            loss = model(input_ids=ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    dirpath = Path(dirpath)
    model.save_pretrained(dirpath)
    tok.save_pretrained(dirpath)
    return dirpath
