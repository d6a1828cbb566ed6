"""Wall time of `mirage train-family` (quick and full families) against a bare training loop.

Targets (issue 5): the full family in <= 3 minutes and the --quick family in <= 45 s on 2 cores.
The baseline, measured in the same run, is a plain torch loop doing only the optimizer steps of
the same models on the same padded batches (no data generation, held-out check, saving or
evaluation), so the ratio is mirage's overhead over the unavoidable training compute.

    .venv/bin/python benchmarks/train_family.py [--quick-only] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def bare_loop_seconds(cfg, threads: int) -> float:
    import torch

    from mirage.train.arithmetic import (
        _char_tokenizer,
        _encode,
        _pad_batch,
        arithmetic_question,
        arithmetic_target,
        build_model,
        encode_keys,
        make_heldout,
        make_training_stream,
        problem_keys,
    )

    torch.set_num_threads(threads)
    held = problem_keys(make_heldout(cfg.ops, cfg.digits, cfg.heldout_per_cell, cfg.seed), cfg.ops)
    op_idx, a, b = make_training_stream(cfg.ops, cfg.digits, cfg.steps * cfg.batch_size, held, cfg.seed)
    assert len(encode_keys(op_idx, a, b)) == cfg.steps * cfg.batch_size
    tok = _char_tokenizer()
    ops = [cfg.ops[i] for i in op_idx]
    seqs, plens = _encode(
        tok,
        [arithmetic_question(int(x), int(y), o) for o, x, y in zip(ops, a, b)],
        [arithmetic_target(int(x), o, int(y)) for o, x, y in zip(ops, a, b)],
    )
    ids, mask, labels = _pad_batch(seqs, plens, tok.pad_token_id)
    start = time.perf_counter()
    for size in cfg.sizes:
        torch.manual_seed(cfg.seed)
        model = build_model(size, len(tok), 64, tok)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for step in range(cfg.steps):
            rows = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
            loss = model(input_ids=ids[rows], attention_mask=mask[rows], labels=labels[rows]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    from mirage.train.arithmetic import make_config, train_family

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick-only", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, threads: {args.threads}, load average: {os.getloadavg()}")
    for quick, target in [(True, 45)] if args.quick_only else [(True, 45), (False, 180)]:
        cfg = make_config(quick=quick)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = train_family(cfg, tmp, threads=args.threads, progress=False)
            mirage_s = time.perf_counter() - start
        bare_s = bare_loop_seconds(cfg, args.threads)
        s = result.summary
        print(
            f"{'quick' if quick else 'full '} family ({len(cfg.sizes)} models, {cfg.steps} steps x {cfg.batch_size}): "
            f"{mirage_s:.1f} s (target {target} s), bare training loop {bare_s:.1f} s, ratio {mirage_s / bare_s:.2f}; "
            f"jump share exact match {s['exact_match']['jump_share']:.2f} vs per-token log-prob "
            f"{s['token_logprob']['jump_share']:.2f} ({s['subset']})"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
