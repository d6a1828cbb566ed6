"""Benchmark: evaluation beyond one process, measured in one run.

(a) The OpenAI-compatible backend against a real llama.cpp server started here (a tiny GPT-2,
    byte-level BPE, converted to f32 GGUF with llama.cpp's converter): target-scoring requests
    per second at ``max_concurrency`` 1, 4 and 16, each as a ratio to concurrency 1. Medians of
    --repeats; no request journal, so every request goes to the server. Then the agreement of
    the server's target log-probs and greedy outputs with the in-process backend on the same
    weights.
(b) ``mirage eval --ray`` against one process on the same 3-model family and task (character-level
    GPT-2s 2 x 64, 4 x 128, 6 x 256; generation + multiple choice + target log-probs): wall time of
    the Ray run (local cluster of --ray-cpus CPUs, started before the clock; worker start-up
    included) over the single-process run, both into fresh stores, whose records are checked equal.

    python benchmarks/eval_scaleout.py [--requests 200] [--repeats 3] [--n 120] [--ray-cpus 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
# Ray workers start fresh interpreters: give them this checkout's mirage too
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SIZES = ((2, 64), (4, 128), (6, 256))


def server_throughput(tmp: Path, n_requests: int, repeats: int, server_threads: int) -> dict[int, float]:
    import numpy as np
    import torch
    from llama_server import LlamaServer, convert_to_gguf
    from tiny_models import make_tiny_bpe_gpt2

    from mirage.evaluate.backends import HFCausalLM
    from mirage.evaluate.openai_backend import OpenAICompletionsBackend
    from mirage.io.family import ServerSpec
    from mirage.io.tasks import arithmetic_task

    torch.set_num_threads(1)
    model = make_tiny_bpe_gpt2(tmp / "tiny", seed=0)
    gguf = convert_to_gguf(model, tmp / "tiny-f32.gguf")
    samples = arithmetic_task("add", digits=2, n=n_requests, seed=1, shots=1).samples
    prompts, targets = [s.prompt for s in samples], [s.target for s in samples]
    rates = {}
    with LlamaServer(gguf, n_threads=server_threads) as srv:
        for c in (1, 4, 16):
            spec = ServerSpec(
                srv.base_url,
                "tiny",
                tokenizer=str(model),
                max_concurrency=c,
                add_bos=True,
                request=MappingProxyType({"repeat_penalty": 1.0}),
            )  # greedy on llama-cpp-python
            backend = OpenAICompletionsBackend(spec)  # no journal: every request is sent
            backend.score_targets(prompts[:4], targets[:4])  # warm-up and the alignment check
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                backend.score_targets(prompts, targets)
                times.append(time.perf_counter() - t0)
            backend.close()
            rates[c] = n_requests / statistics.median(times)
            print(f"  concurrency {c:2d}: {rates[c]:7.1f} requests/s (median of {repeats})", file=sys.stderr)
        backend_scores = OpenAICompletionsBackend(spec)
        served_t = backend_scores.score_targets(prompts, targets)
        served_g = backend_scores.generate(prompts, ["\n"], 8)
        backend_scores.close()
    local = HFCausalLM(str(model), add_bos=True)
    local_t = local.score_targets(prompts, targets)
    local_g = local.generate(prompts, ["\n"], 8)
    diffs = np.concatenate([np.abs(a.logprobs - b.logprobs) for a, b in zip(served_t, local_t)])
    same = np.mean([a.text == b.text for a, b in zip(served_g, local_g)])
    print(
        f"server vs in-process on the same weights ({n_requests} samples): target log-prob |diff| max {diffs.max():.1e}, "
        f"median {np.median(diffs):.1e} per token; identical greedy outputs {same:.0%} "
        f"({len({g.text for g in local_g})} distinct outputs)"
    )
    return rates


def ray_vs_single(tmp: Path, n: int, ray_cpus: int) -> tuple[float, float, float]:
    import pyarrow.parquet as pq
    import ray
    import torch
    from tiny_models import make_tiny_gpt2

    from mirage.evaluate.ray_runner import evaluate_family_ray
    from mirage.evaluate.run import evaluate_family

    fam = tmp / "family"
    for i, (layers, width) in enumerate(SIZES):
        make_tiny_gpt2(fam / f"m{i}", n_layer=layers, n_embd=width, n_head=4, seed=i)
    (fam / "family.yaml").write_text(
        "family: bench\nmodels:\n" + "".join(f"  - name: m{i}\n    path: m{i}\n" for i in range(len(SIZES)))
    )
    task = f"arithmetic:op=add,digits=2,n={n},seed=0,shots=3"
    kw = dict(chunk_size=32, threads=1, progress=False)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    evaluate_family(fam / "family.yaml", task, tmp / "single", **kw)
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False)
    cluster = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        evaluate_family_ray(fam / "family.yaml", task, tmp / "ray", **kw)
        with_ray = time.perf_counter() - t0
    finally:
        ray.shutdown()
    for p in sorted((tmp / "single").rglob("*.parquet")):
        if not p.name.startswith("."):
            other = tmp / "ray" / p.relative_to(tmp / "single")
            assert pq.read_table(p).equals(pq.read_table(other)), p
    return single, with_ray, cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="target-scoring requests per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--server-threads", type=int, default=1, help="llama.cpp threads (--n_threads)")
    ap.add_argument("--n", type=int, default=120, help="problems in the Ray comparison")
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_server:
            print(
                "(a) OpenAI-compatible backend -> llama.cpp server (llama-cpp-python), target scoring", file=sys.stderr
            )
            rates = server_throughput(tmp, args.requests, args.repeats, args.server_threads)
            for c, r in rates.items():
                print(f"server concurrency {c:2d}: {r:.1f} requests/s  ({r / rates[1]:.2f}x concurrency 1)")
        if not args.skip_ray:
            print("(b) one process vs --ray on the same family", file=sys.stderr)
            single, with_ray, cluster = ray_vs_single(tmp, args.n, args.ray_cpus)
            print(
                f"single process: {single:.1f} s; --ray ({args.ray_cpus} CPUs): {with_ray:.1f} s "
                f"(+{cluster:.1f} s to start the cluster); ray / single = {with_ray / single:.2f}; stores equal"
            )


if __name__ == "__main__":
    main()
