"""Benchmark: how close mirage's scoring is to the bare cost of the model, and what the
KV-cached multiple choice saves.

A 3-model character-level GPT-2 family (2 x 64, 4 x 128, 6 x 256; random weights, built here) on
N two-digit addition problems, 3-shot, as generation + 7-way multiple choice + target
log-likelihood. Figures measured in the same run, medians of --repeats:

(a) target scoring: mirage ``score_targets`` (tokenise, sort, pad, forward, float32
    log-softmax, gather, float64 results) / a bare torch forward over the very same padded token
    batches (no tokenisation, no log-softmax) -- the overhead ratio (aim <= 1.25);
(c) multiple choice: mirage (prompt once, its options packed into one row after it and run from
    its KV cache) / the lm-eval way (every prompt+option sequence run in full, batched the same);
(d) the ``mirage eval`` command's wall time for the whole family, all three request kinds, into a
    fresh store (process start, imports and model loading included), and of that the start-up
    alone: a process that only imports what the command imports before its first model runs;
(e) ``evaluate_family`` in process / the time inside the models' forward passes it ran (aim <= 1.5).

(b) ``--lm-eval``: the same requests through lm-evaluation-harness 0.4.x as a local task, in its
    own venv (created under --lm-eval-venv by this script, reusing this environment's torch and
    transformers through a .pth file); implemented, slow to install, off by default.

    python benchmarks/eval_speed.py [--n 200] [--repeats 5] [--threads 1] [--lm-eval]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SIZES = ((2, 64), (4, 128), (6, 256))


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, tokenizer caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bare_forward_batches(backend, prompts, targets):
    """The exact padded batches score_targets builds, for the baseline."""
    p_ids = [backend.encode(p) for p in prompts]
    t_ids = [backend.encode(t) for t in targets]
    batches = []
    for batch in backend._batches([len(p_ids[i]) + len(t_ids[i]) for i in range(len(prompts))], backend.batch_size):
        batches.append(backend._pad([p_ids[i] + t_ids[i] for i in batch], "left"))
    return batches


def naive_choice_batches(backend, prompts, choices):
    seqs = [backend.encode(p) + backend.encode(c) for p, opts in zip(prompts, choices) for c in opts]
    batches = []
    for batch in backend._batches([len(s) for s in seqs], backend.batch_size):
        batches.append(backend._pad([seqs[i] for i in batch], "right"))
    return batches


def run_batches(model, batches, torch):
    with torch.inference_mode():
        for ids, mask, pos in batches:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            torch.log_softmax(logits.float(), dim=-1)  # lm-eval needs every log-prob of every position


def bare_batches(model, batches, torch):
    with torch.inference_mode():
        for ids, mask, pos in batches:
            model(input_ids=ids, attention_mask=mask, position_ids=pos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--lm-eval", action="store_true", help="also time lm-evaluation-harness (installs it into its own venv)"
    )
    ap.add_argument("--lm-eval-venv", type=Path, default=Path(tempfile.gettempdir()) / "mirage-lm-eval-venv")
    args = ap.parse_args()

    import torch
    from tiny_models import make_tiny_gpt2

    from mirage.evaluate.backends import HFCausalLM
    from mirage.io.tasks import arithmetic_task

    if args.threads:
        torch.set_num_threads(args.threads)
    task = arithmetic_task("add", digits=2, n=args.n, seed=0, shots=args.shots)
    prompts, targets = [s.prompt for s in task.samples], [s.target for s in task.samples]
    choices = [s.choices for s in task.samples]
    print(
        f"task: {len(prompts)} x 2-digit addition, {args.shots}-shot, 7 options; torch threads {torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines = ["family: tiny-gpt2", "models:"]
        for n_layer, n_embd in SIZES:
            name = f"l{n_layer}x{n_embd}"
            make_tiny_gpt2(tmp / name, n_layer=n_layer, n_embd=n_embd, n_head=4, seed=n_layer)
            lines += [f"  - name: {name}", f"    path: {name}"]
        (tmp / "family.yaml").write_text("\n".join(lines) + "\n")

        rows = []
        for n_layer, n_embd in SIZES:
            name = f"l{n_layer}x{n_embd}"
            backend = HFCausalLM(str(tmp / name), batch_size=args.batch_size)
            batches = bare_forward_batches(backend, prompts, targets)
            t_mirage = median_time(lambda: backend.score_targets(prompts, targets), args.repeats)
            t_bare = median_time(lambda: bare_batches(backend.model, batches, torch), args.repeats)
            naive = naive_choice_batches(backend, prompts, choices)
            t_mc = median_time(lambda: backend.score_choices(prompts, choices), args.repeats)
            t_mc_naive = median_time(lambda: run_batches(backend.model, naive, torch), args.repeats)
            rows.append((name, backend.num_parameters(), t_mirage, t_bare, t_mc, t_mc_naive))
        print(
            f"{'model':>10} {'params':>9} {'score s':>8} {'bare s':>8} {'(a) ratio':>9} {'MC s':>7} {'full-MC s':>9} {'(c) speed-up':>12}"
        )
        for name, params, tm, tb, tmc, tmn in rows:
            print(f"{name:>10} {params:>9} {tm:8.3f} {tb:8.3f} {tm / tb:9.2f} {tmc:7.3f} {tmn:9.3f} {tmn / tmc:11.1f}x")
        total_m, total_b = sum(r[2] for r in rows), sum(r[3] for r in rows)
        print(f"(a) mirage target scoring / bare forward, whole family: {total_m / total_b:.2f} (aim <= 1.25)")
        print(
            f"(c) full recomputation / KV-cached multiple choice, whole family: "
            f"{sum(r[5] for r in rows) / sum(r[4] for r in rows):.1f}x"
        )

        # the command line, as a user runs it: process start, imports and model loading included
        cmd = [
            sys.executable,
            "-c",
            "from mirage.cli import main; main()",
            "eval",
            "--family",
            str(tmp / "family.yaml"),
            "--task",
            task.source,
            "--out",
            str(tmp / "store"),
            "--batch-size",
            str(args.batch_size),
            "--max-new-tokens",
            "8",
            "--quiet",
        ] + (["--threads", str(args.threads)] if args.threads else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        t_family = time.perf_counter() - t0
        print(
            f"(d) mirage eval command, whole family (generation <= 8 tokens + 7-way MC + log-likelihood, "
            f"{len(prompts)} problems, incl. start-up and model loading): {t_family:.1f} s"
        )
        print(f"    of which process start-up and imports: {startup_seconds():.1f} s")
        t_inproc, t_forward = family_forward_share(tmp, task, args)
        print(
            f"(e) the whole family in process ({t_inproc:.1f} s, model loading included) / the model forward passes "
            f"it ran ({t_forward:.1f} s): {t_inproc / t_forward:.2f} (aim <= 1.5)"
        )
        if args.lm_eval:
            t_lm = run_lm_eval(tmp, task, args)
            print(
                f"(b) lm-evaluation-harness, same requests: {t_lm:.1f} s; mirage is {t_lm / t_family:.1f}x faster (aim >= 4x)"
            )
            print(f"    agreement with lm-eval per sample: {agreement_with_lm_eval(tmp, args.batch_size)}")
        else:
            print("(b) lm-eval comparison not run (pass --lm-eval; installs lm-eval 0.4.x into its own venv)")


def startup_seconds() -> float:
    """Wall time of a process that imports what ``mirage eval`` imports before its first model
    runs (mirage, torch, transformers and its GPT-2 modules) and does nothing else."""
    imports = (
        "from mirage.cli import main; import mirage.evaluate.run, torch; "
        "from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", imports], check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return time.perf_counter() - t0


def family_forward_share(tmp: Path, task, args) -> tuple[float, float]:
    """``evaluate_family`` in this process into a fresh store, every model's forward timed: (wall
    seconds of the whole family, seconds inside the models' forward passes). Their ratio is what
    mirage adds to the bare forward passes the same work needs (loading, tokenising, padding,
    log-softmax, the decoding loop, writing the store)."""
    import torch

    from mirage.evaluate.backends import HFCausalLM
    from mirage.evaluate.run import evaluate_family

    spent = [0.0]

    def make(spec):
        backend = HFCausalLM(spec.ref, batch_size=args.batch_size)
        inner = backend.model.forward

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent[0] += time.perf_counter() - t0

        backend.model.forward = timed
        return backend

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    evaluate_family(
        tmp / "family.yaml",
        task,
        tmp / "store-in-process",
        batch_size=args.batch_size,
        max_new_tokens=8,
        progress=False,
        threads=args.threads,
        backend_factory=make,
    )
    return time.perf_counter() - t0, spent[0]


# ----------------------------------------------------------------------------- lm-eval (b)


def run_lm_eval(tmp: Path, task, args) -> float:
    """Install lm-eval 0.4.x into its own venv (reusing this torch/transformers via a .pth
    file), write the same requests as local tasks and time one run per model."""
    venv = args.lm_eval_venv
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        site = next((venv / "lib").glob("python*/site-packages"))
        import torch  # noqa: F401  (its site-packages is the one to share)

        shared = Path(torch.__file__).resolve().parents[1]
        (site / "mirage_shared.pth").write_text(str(shared) + "\n")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "lm-eval[hf]>=0.4,<0.5"], check=True)
    data = tmp / "lm_eval_data"
    data.mkdir(exist_ok=True)
    rows = [
        {"prompt": s.prompt, "target": s.target, "choices": list(s.choices), "label": s.correct_choice}
        for s in task.samples
    ]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = (
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data / 'test.jsonl'}\n"
        "test_split: test\ndoc_to_text: prompt\n"
    )
    (data / "gen.yaml").write_text(
        "task: mirage_gen\n" + common + "output_type: generate_until\ndoc_to_target: target\n"
        "target_delimiter: ''\ngeneration_kwargs:\n  until: [\"\\n\"]\n  do_sample: false\n  max_gen_toks: 8\n"
        "metric_list:\n  - metric: exact_match\n"
    )
    (data / "mc.yaml").write_text(
        "task: mirage_mc\n" + common + "output_type: multiple_choice\ndoc_to_target: label\n"
        "doc_to_choice: choices\ntarget_delimiter: ''\nmetric_list:\n  - metric: acc\n"
    )
    (data / "ll.yaml").write_text(
        "task: mirage_ll\n" + common + "output_type: loglikelihood\ndoc_to_target: target\n"
        "target_delimiter: ''\nmetric_list:\n  - metric: perplexity\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if args.threads:  # the same CPU threads as mirage got
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    for n_layer, n_embd in SIZES:
        model = tmp / f"l{n_layer}x{n_embd}"
        subprocess.run(
            [
                str(venv / "bin" / "lm_eval"),
                "--model",
                "hf",
                "--model_args",
                f"pretrained={model}",
                "--tasks",
                "mirage_gen,mirage_mc,mirage_ll",
                "--include_path",
                str(data),
                "--batch_size",
                str(args.batch_size),
                "--device",
                "cpu",
                "--output_path",
                str(tmp / "lm_eval_out"),
                "--log_samples",
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - t0


def agreement_with_lm_eval(tmp: Path, batch_size: int) -> dict:
    """Per-sample numbers of both tools on the largest model: max |difference| of option and
    target log-likelihoods, and the share of identical greedy outputs."""
    from mirage.evaluate.backends import HFCausalLM

    name = f"l{SIZES[-1][0]}x{SIZES[-1][1]}"
    backend = HFCausalLM(str(tmp / name), batch_size=batch_size)

    def samples(kind: str) -> list[dict]:
        path = next((tmp / "lm_eval_out").glob(f"*{name}/samples_mirage_{kind}_*.jsonl"))
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    mc, ll, gen = samples("mc"), samples("ll"), samples("gen")
    ours = backend.score_choices([d["doc"]["prompt"] for d in mc], [d["doc"]["choices"] for d in mc])
    mc_diff = max(abs(a - float(r[0])) for o, d in zip(ours, mc) for a, r in zip(o.logprobs, d["filtered_resps"]))
    ours = backend.score_targets([d["doc"]["prompt"] for d in ll], [d["doc"]["target"] for d in ll])
    ll_diff = max(abs(o.logprobs.sum() - float(d["filtered_resps"][0][0])) for o, d in zip(ours, ll))
    outs = backend.generate([d["doc"]["prompt"] for d in gen], ["\n"], 8)
    same = sum(
        o.text == (d["filtered_resps"][0] if isinstance(d["filtered_resps"], list) else d["filtered_resps"])
        for o, d in zip(outs, gen)
    )
    return {
        "model": name,
        "choice_logprob_max_abs_diff": mc_diff,
        "target_logprob_max_abs_diff": ll_diff,
        "same_greedy_output": same / len(gen),
    }


if __name__ == "__main__":
    main()
