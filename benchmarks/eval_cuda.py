"""Benchmark for a GPU machine: mirage's in-process backend on CUDA in bf16/fp16 against float32 on CPU.

Not part of CI (CI has no GPU). Runs as it is on a machine with CUDA, torch and transformers:

    python benchmarks/eval_cuda.py                      # tiny GPT-2s built here, bf16 and fp16
    python benchmarks/eval_cuda.py --model /path/to/pythia-160m --n 500 --dtypes bfloat16

For each dtype it prints, on the same requests (N three-shot 2-digit additions: target
log-probs, 7-way multiple choice, greedy generation):

* tokens per second on the GPU for target scoring (prompt + target tokens through the model) and
  for generation (new tokens), medians of --repeats after a warm-up;
* agreement with float32 on CPU: the largest and the median absolute difference of target
  log-probs per token, the share of samples whose multiple-choice argmax is the same, and the
  share of identical greedy outputs.

``--device cpu`` runs the same script without a GPU (to check it; the figures then mean little).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()  # warm-up (kernels, allocator) and the result
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    import numpy as np
    import torch

    from mirage.evaluate.backends import HFCausalLM
    from mirage.io.tasks import arithmetic_task

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a transformers checkpoint directory (default: a 6 x 512 GPT-2 built here)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda: CUDA is not available on this machine (use --device cpu to check the script)")
    with tempfile.TemporaryDirectory() as d:
        ref = args.model
        if ref is None:
            from tiny_models import make_tiny_gpt2

            ref = str(make_tiny_gpt2(Path(d) / "gpt2", n_layer=6, n_embd=512, n_head=8, seed=0, init_std=0.05))
        samples = arithmetic_task("add", digits=2, n=args.n, seed=0, shots=3).samples
        prompts, targets = [s.prompt for s in samples], [s.target for s in samples]
        choices = [s.choices for s in samples]
        base = HFCausalLM(ref, dtype="float32", device="cpu", batch_size=args.batch_size)
        print(
            f"model {ref}: {base.num_parameters():,} parameters; {args.n} samples; float32 reference on CPU",
            file=sys.stderr,
        )
        ref_t = base.score_targets(prompts, targets)
        ref_c = base.score_choices(prompts, choices)
        ref_g = base.generate(prompts, ["\n"], args.max_new_tokens)
        n_tokens = sum(len(base.encode(p)) + len(base.encode(t)) for p, t in zip(prompts, targets))
        del base
        print(
            f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
        )
        for dtype in args.dtypes.split(","):
            be = HFCausalLM(ref, dtype=dtype, device=args.device, batch_size=args.batch_size)
            sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

            def score(be: HFCausalLM = be) -> list:
                out = be.score_targets(prompts, targets)
                sync()
                return out

            def gen(be: HFCausalLM = be) -> list:
                out = be.generate(prompts, ["\n"], args.max_new_tokens)
                sync()
                return out

            t_score, got_t = timed(score, args.repeats)
            t_gen, got_g = timed(gen, args.repeats)
            got_c = be.score_choices(prompts, choices)
            new_tokens = sum(len(be.encode(g.text)) for g in got_g) or 1
            diffs = np.concatenate([np.abs(a.logprobs - b.logprobs) for a, b in zip(got_t, ref_t)])
            same_mc = np.mean([int(np.argmax(a.logprobs)) == int(np.argmax(b.logprobs)) for a, b in zip(got_c, ref_c)])
            same_gen = np.mean([a.text == b.text for a, b in zip(got_g, ref_g)])
            print(
                f"{dtype}: scoring {n_tokens / t_score:,.0f} tokens/s, generation {new_tokens / t_gen:,.0f} new tokens/s; "
                f"target log-prob |diff| vs float32 CPU: max {diffs.max():.2e}, median {np.median(diffs):.2e}; "
                f"same MC choice {same_mc:.1%}; identical greedy outputs {same_gen:.1%}"
            )
            del be
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
