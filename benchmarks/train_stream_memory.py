"""Memory of `mirage train-family`'s training stream, the figure behind its --steps limit.

train_family builds the whole stream (steps x batch size problems: prompts, token ids, padded
ids, mask and labels) before the first step. This measures the peak RSS of building it at the
default size (600 steps x 64 = 38,400 problems) and at ten times that, each in a fresh process,
and prints the marginal bytes per problem (the ratio of the two RSS increases to the problem
counts' difference) that ``mirage.train.arithmetic.MAX_TRAIN_PROBLEMS`` is sized by.

    .venv/bin/python benchmarks/train_stream_memory.py [--steps 600,6000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import resource, sys
from mirage.train.arithmetic import (_char_tokenizer, _encode, _pad_batch, arithmetic_prompt, arithmetic_target,
                             check_disjoint, encode_keys, make_config, make_heldout, make_training_stream, problem_keys)
cfg = make_config(steps=int(sys.argv[1]))
held = problem_keys(make_heldout(cfg.ops, cfg.digits, cfg.heldout_per_cell, cfg.seed), cfg.ops)
n = cfg.steps * cfg.batch_size
op_idx, a, b = make_training_stream(cfg.ops, cfg.digits, n, held, cfg.seed)
check_disjoint(encode_keys(op_idx, a, b), held)
tok = _char_tokenizer()
ops = [cfg.ops[i] for i in op_idx]
width = max(cfg.digits)
seqs, plens = _encode(tok, [arithmetic_prompt(int(x), o, int(y), width) for o, x, y in zip(ops, a, b)],
                      [arithmetic_target(int(x), o, int(y)) for o, x, y in zip(ops, a, b)])
stream = _pad_batch(seqs, plens, tok.pad_token_id)
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak(steps: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps)], capture_output=True, text=True, check=True)
    n, rss = out.stdout.split()
    return int(n), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="600,6000", help="two step counts (batch size 64)")
    args = parser.parse_args()
    small, large = (int(s) for s in args.steps.split(","))
    (n0, rss0), (n1, rss1) = peak(small), peak(large)
    per_problem = (rss1 - rss0) / (n1 - n0)
    print(f"{n0:,} problems: peak RSS {rss0 / 2**20:,.0f} MiB; {n1:,} problems: {rss1 / 2**20:,.0f} MiB")
    print(
        f"marginal memory: {per_problem / 1000:.2f} KB per problem "
        f"(ratio of RSS growth to problem growth: {(rss1 - rss0) / rss0:.2f}x RSS for {n1 / n0:.0f}x problems)"
    )
    from mirage.train.arithmetic import MAX_TRAIN_PROBLEMS

    print(f"at the limit of {MAX_TRAIN_PROBLEMS:,} problems: about {per_problem * MAX_TRAIN_PROBLEMS / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
