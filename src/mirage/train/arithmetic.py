"""Train a family of small decoder-only transformers on arithmetic: mirage's own scaling family.

Weights cannot be downloaded where mirage is built, so the demo needs a family it trains itself.
``train_family`` trains GPT-2-architecture models of several sizes on generated arithmetic
problems, saves each with ``save_pretrained`` (so ``AutoModelForCausalLM`` / ``AutoTokenizer``
load it like any checkpoint) and writes ``family.yaml`` for ``mirage eval``.

Choices (see docs/training.md):

* **Compute rule: equal tokens.** Every size sees exactly the same training stream (same
  problems, same order, same number of steps), so differences between models come from size
  alone — the situation of a scaling family whose only axis is parameters.
* **Loss on the answer only.** The operands are random, so the loss on prompt tokens is
  irreducible noise that would swamp the signal and spend capacity; the answer characters and the
  newline that ends the answer (where ``mirage eval`` stops generating) are what the models learn.
* **Held-out problems are excluded by construction and then checked.** The held-out set is drawn
  first; training problems are drawn from the rest (rejection of held-out keys), and
  ``check_disjoint`` verifies the finished training stream before any step runs.
* **Cached.** A model directory holding finished weights for the same configuration (a
  fingerprint in ``training.json``) is reused, not retrained; each model directory is written
  atomically, so a killed run never leaves weights that look finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml

from ..errors import MirageInputError
from ..io.files import atomic_dir, write_csv, write_text
from ..io.tasks import OPS, arithmetic_task
from ..progress import progress_bar
from ..stats import emergence_score, jump_sharpness
from .chartok import build_char_tokenizer

# --------------------------------------------------------------------------- problems

T = TypeVar("T")
MAX_DIGITS = 5
# every character the prompts and answers use; a small vocabulary keeps the embedding of the
# tiniest model small, so the family spans a wide range of parameter counts
ARITHMETIC_ALPHABET = "0123456789+-*=\n"
ANSWER_END = "\n"  # what ends an answer in training; mirage eval stops generation at it
OP_SYMBOLS = {"add": "+", "sub": "-", "mul": "*"}


def arithmetic_prompt(a: int, op: str, b: int, width: int) -> str:
    """``7540+2130=`` for 457 + 312 at width 4: both operands written least-significant digit
    first and padded with zeros to ``width`` digits, like the answer. Digit i of each operand then
    sits at the same position in every prompt and at the same distance before answer digit i, so
    a model this small can line digits up by position alone (measured in docs/training.md: with
    most-significant-first operands the family's per-token accuracy was far less regular in
    size)."""
    sym = OP_SYMBOLS[op]
    return f"{str(a)[::-1].ljust(width, '0')}{sym}{str(b)[::-1].ljust(width, '0')}="


def answer_digits(a: int, op: str, b: int) -> int:
    """How many digits the answer is written with: enough for any result of operands this long
    (one more than the longer operand for add, the longer operand's for sub, both for mul), so
    the answer's length is read off the prompt rather than computed from the carries."""
    la, lb = len(str(a)), len(str(b))
    return {"add": max(la, lb) + 1, "sub": max(la, lb), "mul": la + lb}[op]


def arithmetic_target(a: int, op: str, b: int) -> str:
    """The answer written least-significant digit first, zero-padded to ``answer_digits``
    (457 + 312 -> ``9670``); a negative difference ends with ``-``. Reversed digits let a model
    emit each digit right after the carry that decides it (Lee et al. 2023, "Teaching arithmetic
    to small transformers"): written most-significant first, the first digit depends on every
    carry below it, which models this small do not learn in a CPU-minute."""
    value = OPS[op][1](a, b)
    text = str(abs(value)).zfill(answer_digits(a, op, b))[::-1]
    return text + ("-" if value < 0 else "")


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem: operation, operands, digits per operand and the prompt's width."""

    op: str
    a: int
    b: int
    digits: int
    width: int  # operands are padded to this many digits: the largest digit count of the family

    @property
    def prompt(self) -> str:
        """The training and evaluation prompt (operands least-significant digit first)."""
        return arithmetic_prompt(self.a, self.op, self.b, self.width)

    @property
    def target(self) -> str:
        """The answer, least-significant digit first, ending the answer."""
        return arithmetic_target(self.a, self.op, self.b)


def _operand_range(digits: int) -> tuple[int, int]:
    """Operands with exactly ``digits`` digits (1 digit: 0-9)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1


def encode_keys(op_idx: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One integer per problem, so set operations on problems are numpy set operations."""
    return (op_idx.astype(np.int64) * 10**MAX_DIGITS + a) * 10**MAX_DIGITS + b


def problem_keys(problems: Iterable[Problem], ops: Sequence[str]) -> np.ndarray:
    """One integer key per problem (operation and operands), to compare sets of problems."""
    problems = list(problems)
    index = {op: i for i, op in enumerate(ops)}
    return encode_keys(
        np.array([index[p.op] for p in problems], dtype=np.int64),
        np.array([p.a for p in problems], dtype=np.int64),
        np.array([p.b for p in problems], dtype=np.int64),
    )


def heldout_size(digits: int, per_cell: int) -> int:
    """At most a fifth of a cell's problem space is held out (1-digit cells have only 100
    problems, most of which training must keep)."""
    lo, hi = _operand_range(digits)
    return min(per_cell, (hi - lo + 1) ** 2 // 5)


def make_heldout(ops: Sequence[str], digits: Sequence[int], per_cell: int, seed: int) -> list[Problem]:
    """The held-out problems of every (op, digits) cell: the operand pairs that
    ``arithmetic:op=OP,digits=D,n=N,seed=SEED`` draws (the very generator of ``tasks.py``),
    N = ``heldout_size``, written in the family's format (operands padded to the largest digit
    count). The family is evaluated on these (``heldout.jsonl``); training never sees them."""
    width = max(digits)
    out: list[Problem] = []
    for op in ops:
        for d in digits:
            task = arithmetic_task(op=op, digits=d, n=heldout_size(d, per_cell), seed=seed, view="generate")
            out += [Problem(op, int(s.metadata["a"]), int(s.metadata["b"]), d, width) for s in task.samples]
    return out


def make_training_stream(
    ops: Sequence[str], digits: Sequence[int], n: int, exclude: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` training problems (op index, a, b), uniform over op and digit count, never a key in
    ``exclude``: drawn in blocks and filtered, so exclusion holds by construction."""
    rng = np.random.default_rng([seed, 2])
    ops_out, a_out, b_out, have = [], [], [], 0
    while have < n:
        m = 2 * (n - have) + 64
        op_idx = rng.integers(0, len(ops), size=m)
        dig = np.asarray(digits)[rng.integers(0, len(digits), size=m)]
        lo = np.where(dig == 1, 0, 10 ** (dig - 1))
        hi = 10**dig  # exclusive
        a = lo + (rng.random(m) * (hi - lo)).astype(np.int64)
        b = lo + (rng.random(m) * (hi - lo)).astype(np.int64)
        keep = ~np.isin(encode_keys(op_idx, a, b), exclude)
        ops_out.append(op_idx[keep])
        a_out.append(a[keep])
        b_out.append(b[keep])  # noqa: E702
        have += int(keep.sum())
    return (np.concatenate(ops_out)[:n], np.concatenate(a_out)[:n], np.concatenate(b_out)[:n])


@dataclass(frozen=True)
class Overlap:
    """How many training problems are also held out (0 when the sets are disjoint), with examples."""

    n_train: int
    n_heldout: int
    n_shared: int
    examples: tuple[str, ...]


def find_overlap(train_keys: np.ndarray, heldout_keys: np.ndarray) -> Overlap:
    """The problems the two key sets share."""
    shared = np.intersect1d(np.unique(train_keys), np.unique(heldout_keys))
    return Overlap(len(train_keys), len(heldout_keys), len(shared), tuple(str(k) for k in shared[:5]))


def check_disjoint(train_keys: np.ndarray, heldout_keys: np.ndarray, source: str = "training data") -> Overlap:
    """Raise ``MirageInputError`` if any held-out problem occurs among the training problems."""
    ov = find_overlap(train_keys, heldout_keys)
    if ov.n_shared:
        raise MirageInputError(
            f"{ov.n_shared} held-out problems occur in the training stream (keys {', '.join(ov.examples)})", source
        )
    return ov


# --------------------------------------------------------------------------- sizes and config


@dataclass(frozen=True)
class ModelSize:
    """One model size: a name, its layers and its width."""

    name: str
    n_layer: int
    n_embd: int

    @property
    def n_head(self) -> int:
        """Attention heads: one per 16 dimensions."""
        return max(1, self.n_embd // 16)  # 16-dimensional heads at every width


# Named sizes (layers x width, 16-dimensional heads); any LAYERSxWIDTH item works too.
SIZE_PRESETS = {
    "tiny": ModelSize("tiny", 1, 4),
    "xs": ModelSize("xs", 1, 16),
    "s": ModelSize("s", 1, 32),
    "m": ModelSize("m", 2, 32),
    "l": ModelSize("l", 2, 48),
    "xl": ModelSize("xl", 3, 64),
    "xxl": ModelSize("xxl", 4, 96),
}
# Parameters roughly double from one size to the next (as in published families, whose sizes
# step 2-4x), 484 - 59 k parameters (123x). Measured (docs/training.md): after 600 steps of 64
# problems, per-token accuracy on 3-4 digit sums rises 0.30 -> 0.98 across these sizes.
DEFAULT_SIZES = ("1x4", "1x8", "1x12", "1x16", "1x24", "1x32", "2x32", "2x48")
# the quick family (the test suite's): 6 of the 8 sizes, trained exactly as in the full family
# (same settings fingerprint, so a full run in the same directory reuses them)
QUICK_SIZES = ("1x4", "1x8", "1x16", "1x24", "1x32", "2x48")


def parse_sizes(spec: str | Sequence[str]) -> tuple[ModelSize, ...]:
    """Preset names (``tiny,xs,s,m,l,xl,xxl``) or ``LAYERSxWIDTH`` items such as ``2x64``."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise MirageInputError("no model sizes given", "--sizes")
    sizes = []
    for item in items:
        if item in SIZE_PRESETS:
            sizes.append(SIZE_PRESETS[item])
            continue
        m = re.fullmatch(r"(\d+)x(\d+)", item)
        if not m:
            raise MirageInputError(
                f"unknown size {item!r}: use one of {', '.join(SIZE_PRESETS)} or LAYERSxWIDTH such as 2x64", "--sizes"
            )
        layers, width = int(m.group(1)), int(m.group(2))
        if not (1 <= layers <= 48 and 2 <= width <= 4096):
            raise MirageInputError(f"size {item!r} out of range (layers 1-48, width 2-4096)", "--sizes")
        size = ModelSize(item, layers, width)
        if width % size.n_head:  # attention splits the width evenly over the heads
            near = [
                w for w in range(max(2, width - 16), min(4096, width + 16) + 1) if w % ModelSize("", 1, w).n_head == 0
            ]
            lower = max((w for w in near if w < width), default=None)
            higher = min((w for w in near if w > width), default=None)
            hint = " or ".join(f"{layers}x{w}" for w in (lower, higher) if w is not None)
            raise MirageInputError(
                f"size {item!r}: width {width} does not split into its {size.n_head} attention "
                f"heads (one per 16 dimensions); use e.g. {hint}",
                "--sizes",
            )
        sizes.append(size)
    names = [s.name for s in sizes]
    if len(set(names)) != len(names):
        raise MirageInputError(f"repeated size in {','.join(names)}", "--sizes")
    return tuple(sizes)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained family: sizes, data, optimisation, seed, held-out set."""

    sizes: tuple[ModelSize, ...]
    ops: tuple[str, ...] = ("add",)
    digits: tuple[int, ...] = (1, 2, 3, 4)
    steps: int = 600
    batch_size: int = 64
    lr: float = 5e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    heldout_per_cell: int = 1000
    eval_per_cell: int = 200
    family: str = "mirage-arithmetic"

    def model_fingerprint(self, size: ModelSize) -> str:
        """Everything that determines one model's weights: equal fingerprints, equal weights."""
        d = asdict(self)
        for key in ("sizes", "family", "eval_per_cell"):  # these do not change any weight
            d.pop(key)
        d["size"] = asdict(size)
        d["format"] = 3  # bumped whenever the code changes what a setting produces
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


QUICK_STEPS = FULL_STEPS = 600  # x 64 problems of 1-4 digits
# The whole training stream (steps x batch size problems) is built in memory before the first
# step: about 2.5 KB a problem (`python benchmarks/train_stream_memory.py`: peak RSS 386 MiB at
# 38,400 problems, 1,208 MiB at 384,000), so more than this is refused up-front rather than
# allocated (2.5 GB at the limit; --steps 100000000 would need 16 TB).
MAX_TRAIN_PROBLEMS = 1_000_000
_BYTES_PER_PROBLEM = 2500
MAX_SEED = 2**32 - 1
QUICK_DIGITS = FULL_DIGITS = "1,2,3,4"


def make_config(
    *,
    ops: str | Sequence[str] = "add",
    digits: str | Sequence[int] | None = None,
    sizes: str | Sequence[str] | None = None,
    steps: int | None = None,
    seed: int = 0,
    quick: bool = False,
    batch_size: int | None = None,
    lr: float = 5e-3,
    heldout_per_cell: int = 1000,
    eval_per_cell: int = 200,
    family: str = "mirage-arithmetic",
) -> TrainConfig:
    """Validate user-facing options (strings or sequences) into a ``TrainConfig``."""
    op_list = [o.strip() for o in (ops.split(",") if isinstance(ops, str) else ops) if str(o).strip()]
    bad = [o for o in op_list if o not in OPS]
    if not op_list or bad:
        raise MirageInputError(
            f"unknown operation(s) {', '.join(bad) or '(none)'}: choose from {', '.join(OPS)}", "--ops"
        )
    if digits is None:
        digits = QUICK_DIGITS if quick else FULL_DIGITS
    try:
        dig = [int(d) for d in (digits.split(",") if isinstance(digits, str) else digits) if str(d).strip()]
    except ValueError:
        raise MirageInputError(f"expected whole numbers separated by commas, got {digits!r}", "--digits") from None
    if not dig or any(not 1 <= d <= MAX_DIGITS for d in dig):
        raise MirageInputError(f"digits must be between 1 and {MAX_DIGITS}, got {digits!r}", "--digits")
    size_tuple = parse_sizes(sizes if sizes is not None else (QUICK_SIZES if quick else DEFAULT_SIZES))
    steps = steps if steps is not None else (QUICK_STEPS if quick else FULL_STEPS)
    if steps < 1:
        raise MirageInputError(f"steps must be at least 1, got {steps}", "--steps")
    batch_size = batch_size if batch_size is not None else 64
    if batch_size < 1:
        raise MirageInputError(f"batch size must be at least 1, got {batch_size}", "--batch-size")
    if steps * batch_size > MAX_TRAIN_PROBLEMS:
        need = steps * batch_size * _BYTES_PER_PROBLEM
        raise MirageInputError(
            f"{steps:,} steps x {batch_size:,} problems = {steps * batch_size:,} training problems, "
            f"more than the limit of {MAX_TRAIN_PROBLEMS:,} (the stream is held in memory, about "
            f"{_BYTES_PER_PROBLEM / 1000:.1f} KB a problem: {_human_bytes(need)})",
            "--steps",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise MirageInputError(f"must be a whole number from 0 to {MAX_SEED}, got {seed!r}", "--seed")
    if not (0 < lr < 1):
        raise MirageInputError(f"learning rate must be in (0, 1), got {lr}", "--lr")
    if heldout_per_cell < 1 or eval_per_cell < 1:
        raise MirageInputError(
            f"held-out and evaluated problems per cell must be at least 1, got {heldout_per_cell} and {eval_per_cell}",
            "--heldout",
        )
    return TrainConfig(
        sizes=size_tuple,
        ops=tuple(dict.fromkeys(op_list)),
        digits=tuple(sorted(set(dig))),
        steps=int(steps),
        batch_size=int(batch_size),
        lr=float(lr),
        seed=int(seed),
        heldout_per_cell=int(heldout_per_cell),
        eval_per_cell=int(eval_per_cell),
        family=family,
    )


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


# --------------------------------------------------------------------------- tokenizer and batches


def _char_tokenizer() -> Any:
    return build_char_tokenizer(ARITHMETIC_ALPHABET)


def _encode(tok: Any, prompts: Sequence[str], targets: Sequence[str]) -> tuple[list[list[int]], list[int]]:
    """Token ids of prompt + target + ANSWER_END per problem, and the prompt length of each."""
    p_ids = tok(list(prompts), add_special_tokens=False)["input_ids"]
    t_ids = tok([t + ANSWER_END for t in targets], add_special_tokens=False)["input_ids"]
    return [p + t for p, t in zip(p_ids, t_ids)], [len(p) for p in p_ids]


def _pad_batch(seqs: Sequence[list[int]], prompt_lens: Sequence[int], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded input ids, attention mask and labels (-100 on prompt and padding)."""
    import torch  # optional heavy dependency (mirage[eval])

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, pl) in enumerate(zip(seqs, prompt_lens)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, pl : len(s)] = torch.tensor(s[pl:])
    return ids, mask, labels


# --------------------------------------------------------------------------- models


def build_model(size: ModelSize, vocab_size: int, n_positions: int, tok: Any) -> Any:
    """A freshly initialised GPT-2 of ``size`` for the character tokenizer ``tok``."""
    from transformers import GPT2Config, GPT2LMHeadModel  # optional heavy dependency (mirage[eval])

    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=size.n_embd,
        n_layer=size.n_layer,
        n_head=size.n_head,
        n_inner=4 * size.n_embd,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(cfg)


def count_params(model: Any) -> tuple[int, int]:
    """(all parameters, non-embedding parameters): token and position embeddings excluded, as in
    Kaplan et al. 2020; the output layer is tied to the token embedding."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return int(total), int(total - emb)


@dataclass(frozen=True)
class TrainedModel:
    """One trained (or reused) model: where it is, its size and training budget, its final loss."""

    name: str
    path: Path
    params: int
    non_embedding_params: int
    train_tokens: int
    train_flops: float
    final_loss: float
    seconds: float
    cached: bool


@dataclass(frozen=True)
class FamilyResult:
    """What ``train_family`` made: the models, their quick evaluation, the held-out problems and family.yaml."""

    out: Path
    models: tuple[TrainedModel, ...]
    quick_eval: pd.DataFrame
    heldout_path: Path
    family_yaml: Path
    overlap: Overlap
    seconds: float
    summary: dict = field(default_factory=dict)


def peak_lr(size: ModelSize, cfg: TrainConfig) -> float:
    """``cfg.lr`` at width 64, scaled by sqrt(64 / width) and capped at twice that: narrow models
    tolerate (and, in a short run, need) larger steps than wide ones."""
    return min(2 * cfg.lr, cfg.lr * math.sqrt(64 / size.n_embd))


def _lr_at(step: int, cfg: TrainConfig, peak: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _train_one(
    size: ModelSize,
    cfg: TrainConfig,
    tok: Any,
    stream: tuple[Any, Any, Any],
    n_positions: int,
    out_dir: Path,
    progress: bool,
) -> TrainedModel:
    """Train one size on ``stream`` (padded ids, mask, labels of every training problem, in order)."""
    import torch  # optional heavy dependency (mirage[eval])

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build_model(size, len(tok), n_positions, tok)
    params, non_emb = count_params(model)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    peak = peak_lr(size, cfg)
    model.train()
    log_rows, tokens = [], 0
    bar = progress_bar(cfg.steps, f"{size.name} ({params:,} params)", unit="step") if progress else None
    all_ids, all_mask, all_labels = stream
    for step in range(cfg.steps):
        rows = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        width = int(all_mask[rows].sum(1).max())  # trim the padding this batch does not need
        ids, mask, labels = all_ids[rows, :width], all_mask[rows, :width], all_labels[rows, :width]
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg, peak)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int(mask.sum())
        log_rows.append((step + 1, float(loss.detach()), tokens))
        if bar is not None:
            bar.update(1)
            if step % 20 == 0 or step == cfg.steps - 1:
                bar.set_postfix_str(f"loss={log_rows[-1][1]:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    flops = 6.0 * non_emb * tokens  # Kaplan et al.: ~6 N D for a forward and backward pass
    final_loss = float(np.mean([r[1] for r in log_rows[-max(1, cfg.steps // 20) :]]))
    seconds = time.perf_counter() - start
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_csv(tmp / "train_log.csv", pd.DataFrame(log_rows, columns=["step", "loss", "tokens"]))
        info = {
            "fingerprint": cfg.model_fingerprint(size),
            "size": asdict(size),
            "params": params,
            "non_embedding_params": non_emb,
            "train_tokens": tokens,
            "train_flops": flops,
            "final_loss": final_loss,
            "seconds": round(seconds, 2),
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "loss_on": "answer tokens and the newline ending the answer",
            "compute_rule": "equal tokens for every size",
        }
        (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return TrainedModel(size.name, out_dir, params, non_emb, tokens, flops, final_loss, seconds, cached=False)


def _cached(size: ModelSize, cfg: TrainConfig, out_dir: Path) -> TrainedModel | None:
    """The finished model in ``out_dir`` if it was trained with this exact configuration."""
    info_path = out_dir / "training.json"
    weights = [out_dir / "model.safetensors", out_dir / "pytorch_model.bin"]
    if not info_path.is_file() or not any(w.is_file() for w in weights):
        return None
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if info.get("fingerprint") != cfg.model_fingerprint(size):
        return None
    return TrainedModel(
        size.name,
        out_dir,
        int(info["params"]),
        int(info["non_embedding_params"]),
        int(info["train_tokens"]),
        float(info["train_flops"]),
        float(info["final_loss"]),
        float(info["seconds"]),
        cached=True,
    )


# --------------------------------------------------------------------------- quick evaluation


def score_heldout(model: Any, tok: Any, problems: Sequence[Problem], batch_size: int = 256) -> pd.DataFrame:
    """Teacher-forced scoring of every held-out problem: per-token log-probabilities of the answer
    and whether greedy decoding would produce it exactly (argmax right at every answer position
    and ANSWER_END predicted right after it, which is what greedy generation outputs)."""
    import torch  # optional heavy dependency (mirage[eval])

    rows = []
    seqs, plens = _encode(tok, [p.prompt for p in problems], [p.target for p in problems])
    with torch.no_grad():
        for lo in range(0, len(problems), batch_size):
            ids, mask, labels = _pad_batch(seqs[lo : lo + batch_size], plens[lo : lo + batch_size], tok.pad_token_id)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            nxt = labels[:, 1:]
            valid = nxt != -100
            tok_lp = logp.gather(-1, nxt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            right = logp.argmax(-1) == nxt
            for i in range(ids.shape[0]):
                v = valid[i].nonzero().squeeze(-1)
                answer = v[:-1]  # the last labelled position is ANSWER_END
                p = problems[lo + i]
                rows.append(
                    {
                        "op": p.op,
                        "digits": p.digits,
                        "target_tokens": int(len(answer)),
                        "exact_match": bool(right[i, v].all()),
                        "sum_logprob": float(tok_lp[i, answer].sum()),
                        "token_accuracy": float(right[i, answer].float().mean()),
                    }
                )
    return pd.DataFrame(rows)


def _op_and_digits(problem: Any) -> tuple[str, int]:
    return problem.op, problem.digits


def first_per_cell(problems: Sequence[T], n: int, cell: Callable[[T], Hashable] = _op_and_digits) -> list[T]:
    """The first ``n`` problems of every (op, digits) cell, in order; ``cell`` gives an item's
    cell (the default reads ``Problem``s; the demo passes one for ``heldout.jsonl`` rows)."""
    seen: dict = {}
    out = []
    for p in problems:
        k = cell(p)
        if seen.get(k, 0) < n:
            seen[k] = seen.get(k, 0) + 1
            out.append(p)
    return out


def summarize_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Per subset (all problems, and each op × digits cell): exact match and the mean per-token
    log-probability of the answer (total log-probability over total answer tokens)."""
    multi = scores[scores["digits"] >= 2]
    parts = (
        [("all", scores)]
        + ([("multi_digit", multi)] if len(multi) else [])
        + [(f"{op}_{d}d", g) for (op, d), g in scores.groupby(["op", "digits"], sort=True)]
    )
    out = []
    for name, g in parts:
        out.append(
            {
                "subset": name,
                "n": len(g),
                "exact_match": float(g["exact_match"].mean()),
                "token_logprob": float(g["sum_logprob"].sum() / g["target_tokens"].sum()),
                "token_accuracy": float((g["token_accuracy"] * g["target_tokens"]).sum() / g["target_tokens"].sum()),
            }
        )
    return pd.DataFrame(out)


def sharpness_summary(quick_eval: pd.DataFrame, subset: str | None = None) -> dict[str, Any]:
    """Emergence score and jump share of exact match and of per-token log-probability against
    parameters on multi-digit problems (all problems when there are none): the family shows the
    paper's effect when exact match is the sharper of the two."""
    if subset is None:
        subset = "multi_digit" if (quick_eval["subset"] == "multi_digit").any() else "all"
    q = quick_eval[quick_eval["subset"] == subset].sort_values("params")
    out: dict[str, Any] = {"subset": subset}
    for col in ("exact_match", "token_logprob"):
        es = emergence_score(q["params"], q[col])
        js = jump_sharpness(q["params"], q[col])
        out[col] = {
            "values": [round(float(v), 4) for v in q[col]],
            "emergence_score": es.score,
            "flat_then_jump": es.flat_then_jump,
            "jump_share": js.jump_share,
            "jump_index": js.jump_index,
        }
    out["exact_match_sharper"] = out["exact_match"]["jump_share"] > out["token_logprob"]["jump_share"]
    return out


# --------------------------------------------------------------------------- the family


def family_spec(cfg: TrainConfig, models: Sequence[TrainedModel]) -> dict:
    """``family.yaml`` in the format ``mirage eval`` reads; paths relative to the file."""
    return {
        "family": cfg.family,
        "models": [
            {
                "name": m.name,
                "path": f"./{m.name}",
                "params": m.params,
                "non_embedding_params": m.non_embedding_params,
                "train_tokens": m.train_tokens,
                "train_flops": float(m.train_flops),
            }
            for m in models
        ],
    }


def train_family(
    cfg: TrainConfig, out: str | os.PathLike, *, threads: int | None = None, progress: bool = True
) -> FamilyResult:
    """Train (or reuse) every model of ``cfg`` under ``out``; write heldout.jsonl, family.yaml and
    quick_eval.csv. Returns what was trained and the measured quick evaluation."""
    import torch  # optional heavy dependency (mirage[eval]): training needs it

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MirageInputError("exists and is not a directory", str(out))
    if threads is not None and threads < 1:
        raise MirageInputError(f"threads must be at least 1, got {threads}", "--threads")
    start = time.perf_counter()
    torch.set_num_threads(threads or os.cpu_count() or 1)

    heldout = make_heldout(cfg.ops, cfg.digits, cfg.heldout_per_cell, cfg.seed)
    heldout_keys = problem_keys(heldout, cfg.ops)
    n_train = cfg.steps * cfg.batch_size
    op_idx, a, b = make_training_stream(cfg.ops, cfg.digits, n_train, heldout_keys, cfg.seed)
    overlap = check_disjoint(encode_keys(op_idx, a, b), heldout_keys)  # verified, not assumed

    tok = _char_tokenizer()
    train_ops = [cfg.ops[i] for i in op_idx]
    width = max(cfg.digits)
    seqs, plens = _encode(
        tok,
        [arithmetic_prompt(int(x), o, int(y), width) for o, x, y in zip(train_ops, a, b)],
        [arithmetic_target(int(x), o, int(y)) for o, x, y in zip(train_ops, a, b)],
    )
    longest = max(
        len(arithmetic_prompt(10**d - 1, o, 10**d - 1, width) + arithmetic_target(0, o, 10**d - 1))
        for o in cfg.ops
        for d in cfg.digits
    )
    # room for what mirage eval asks of a model: the prompt plus the longest target plus 16 new
    # tokens (its generation budget); fewer positions and it would cut the front of the prompt
    n_positions = 8 * math.ceil((longest + 24) / 8)

    out.mkdir(parents=True, exist_ok=True)
    write_text(
        out / "heldout.jsonl",
        "".join(
            json.dumps({"prompt": p.prompt, "target": p.target, "op": p.op, "digits": p.digits, "a": p.a, "b": p.b})
            + "\n"
            for p in heldout
        ),
    )

    from transformers import AutoModelForCausalLM  # optional heavy dependency (mirage[eval])
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per model is ours; no per-file loading bars
    hf_logging.set_verbosity_error()
    eval_set = first_per_cell(heldout, cfg.eval_per_cell)
    trained, evals, stream = [], [], None
    for size in cfg.sizes:
        model_dir = out / size.name
        tm = _cached(size, cfg, model_dir)
        if tm is None:
            if stream is None:  # padded once, shared by every size
                stream = _pad_batch(seqs, plens, tok.pad_token_id)
            tm = _train_one(size, cfg, tok, stream, n_positions, model_dir, progress)
        elif progress:
            print(f"{size.name}: reusing finished weights in {model_dir}")
        trained.append(tm)
        model = AutoModelForCausalLM.from_pretrained(model_dir)  # score what was saved, not what is in memory
        model.eval()
        summ = summarize_scores(score_heldout(model, tok, eval_set))
        summ.insert(0, "model", size.name)
        for col in ("train_flops", "train_tokens", "non_embedding_params", "params"):
            summ.insert(1, col, getattr(tm, col))
        evals.append(summ)
    quick_eval = pd.concat(evals, ignore_index=True)
    write_csv(out / "quick_eval.csv", quick_eval)
    write_text(out / "family.yaml", yaml.safe_dump(family_spec(cfg, trained), sort_keys=False))
    summary = sharpness_summary(quick_eval) if len(trained) >= 3 else {}
    return FamilyResult(
        out,
        tuple(trained),
        quick_eval,
        out / "heldout.jsonl",
        out / "family.yaml",
        overlap,
        time.perf_counter() - start,
        summary,
    )
