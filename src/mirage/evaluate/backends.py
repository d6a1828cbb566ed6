"""Model backends: what ``mirage eval`` asks of a language model, and a transformers implementation.

A backend answers three kinds of request, always in batches:

* ``score_targets(prompts, targets)`` -- teacher-forced log p of every target token;
* ``score_choices(prompts, choices)`` -- summed log p and token count of every option;
* ``generate(prompts, stop, max_new_tokens)`` -- greedy continuations cut at the first stop string.

Tokenisation (the lm-eval convention): the prompt and the continuation are tokenised *separately*
and their ids concatenated, so no token ever spans the prompt/target boundary and the target's
tokens are the same whatever precedes them. The separating space therefore belongs to the target
(``" 69"``), not to the prompt. An empty prompt is replaced by the BOS (else EOS) token, and with
``add_bos`` every prompt starts with it (servers such as llama-cpp-python need that). A request
longer than the context window loses prompt tokens from the left; the target is never cut.

Speed (HFCausalLM): requests are sorted by length and batched; one forward pass per batch gives
every target log-prob (left padding puts all targets at the end, so only their logits are
computed); a multiple-choice prompt is encoded once and every option is scored from its cached
keys/values; generation is batched greedy decoding with left padding and a KV cache that stops
as soon as every row has produced a stop string, EOS or the token limit. Log-softmax is taken in
float32 whatever the model dtype, and results are returned as float64.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import MirageInputError

DTYPES = ("float32", "float16", "bfloat16", "auto")
DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class TargetScore:
    """Teacher-forced log-probability of each target token, and the tokens themselves."""

    logprobs: np.ndarray  # float64, one per target token
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class ChoiceScore:
    """Each option's log-probability summed over its tokens, and its length in tokens."""

    logprobs: tuple[float, ...]  # summed over each option's tokens
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class Generation:
    """A greedy continuation, cut before the first stop string, and its tokens."""

    text: str  # cut before the first stop string
    tokens: tuple[str, ...]


class Backend(Protocol):
    """What evaluates a model: ``evaluate_family`` asks a backend for these, in batches.

    Shapes: ``score_targets`` returns one :class:`TargetScore` per (prompt, target) pair, with one
    log-probability per target token (the target tokenized as it follows the prompt);
    ``score_choices`` one :class:`ChoiceScore` per prompt, with one summed log-probability and one
    length per option; ``generate`` one :class:`Generation` per prompt. ``describe`` says what
    identifies the numbers (it enters nothing the user did not choose), ``num_parameters`` the size."""

    def score_targets(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        """Log-probability of every target token after its prompt, one result per pair."""

    def score_choices(self, prompts: Sequence[str], choices: Sequence[Sequence[str]]) -> list[ChoiceScore]:
        """Summed log-probability and token count of every option after its prompt."""

    def generate(self, prompts: Sequence[str], stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        """Greedy continuation of every prompt, up to ``max_new_tokens`` or a stop string."""

    def describe(self) -> dict:
        """What identifies the numbers this backend produces."""

    def num_parameters(self) -> int:
        """The model's parameter count."""


class HFCausalLM:
    """A causal LM from a local checkpoint directory or a hub id (+ revision) via transformers."""

    def __init__(
        self,
        ref: str,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 16,
        padding_side: str = "left",
        add_bos: bool = False,
    ):
        import torch  # optional heavy dependencies (mirage[eval]): loaded when a model is
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # mirage shows one progress bar per model; transformers' per-file loading bars are noise
        hf_logging.disable_progress_bar()
        if dtype not in DTYPES:
            raise MirageInputError(f"unknown dtype {dtype!r} (expected {', '.join(DTYPES)})", "--dtype")
        if device.split(":")[0] not in DEVICES:
            raise MirageInputError(f"unknown device {device!r} (expected {', '.join(DEVICES)})", "--device")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MirageInputError("CUDA is not available on this machine", "--device")
        if batch_size < 1:
            raise MirageInputError("batch size must be at least 1", "--batch-size")
        if padding_side not in ("left", "right"):
            raise MirageInputError("padding side must be 'left' or 'right'", "padding_side")
        self.ref, self.revision, self.dtype, self.device = str(ref), revision, dtype, torch.device(device)
        self.batch_size, self.padding_side, self.add_bos = batch_size, padding_side, add_bos
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.ref, revision=revision)
            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            self.model = AutoModelForCausalLM.from_pretrained(self.ref, revision=revision, dtype=torch_dtype)
        except Exception as exc:  # noqa: BLE001 -- whatever a broken checkpoint raises (OSError, ValueError,
            # safetensors' SafetensorError, torch's unpickling errors), the user gets one line
            if isinstance(exc, MemoryError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = f"{self.ref} (revision {revision})" if revision else self.ref
            raise MirageInputError(f"cannot load model: {first}", where) from None
        self.model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' stub types .to() oddly
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        tok = self.tokenizer
        self.pad_id = next(i for i in (tok.pad_token_id, tok.eos_token_id, 0) if i is not None)
        self.eos_id = tok.eos_token_id
        self.start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        cfg = self.model.config
        self.max_length = int(
            next(
                (
                    getattr(cfg, k)
                    for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                    if getattr(cfg, k, None)
                ),
                2048,
            )
        )

    # ------------------------------------------------------------------ description
    def num_parameters(self) -> int:
        """The model's parameter count (transformers counts it)."""
        return int(self.model.num_parameters())

    def describe(self) -> dict:
        """What identifies the numbers this backend produces (used for resume invalidation)."""
        return {
            "ref": self.ref,
            "revision": self.revision,
            "dtype": self.dtype,
            "weights": checkpoint_fingerprint(self.ref),
        }

    # ------------------------------------------------------------------ tokenisation
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """One batched call into the Rust tokenizer (much faster than one call per text)."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False).input_ids]

    def _prompt_ids(self, text: str, room: int, ids: list[int] | None = None) -> list[int]:
        ids = (self.encode(text) if text else []) if ids is None else ids
        start = self.start_id if self.start_id is not None else self.pad_id
        if not ids:
            ids = [start]
        elif self.add_bos:
            ids = [start] + ids
        keep = max(1, self.max_length - room)
        if len(ids) > keep and self.add_bos and keep > 1:
            return [start] + ids[-(keep - 1) :]  # the BOS survives a cut prompt
        return ids[-keep:]

    def tokens_of(self, text: str) -> tuple[str, ...]:
        """The tokens of ``text`` as strings (empty for no text)."""
        return tuple(self.tokenizer.convert_ids_to_tokens(self.encode(text))) if text else ()

    # ------------------------------------------------------------------ forward
    def _forward(
        self, ids: Any, mask: Any, positions: Any, cache: Any = None, keep: int = 0, use_cache: bool = False
    ) -> tuple[Any, Any]:
        import torch  # optional heavy dependency (mirage[eval])

        kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": use_cache}
        if cache is not None:
            kwargs[self._cache_kw] = cache
        if keep and self._keep_kw:
            kwargs[self._keep_kw] = keep
        with torch.inference_mode():
            out = self.model(**kwargs)
        logits = out.logits
        if keep and not self._keep_kw:
            logits = logits[:, -keep:]
        if not use_cache:
            return logits, None
        return logits, out["cache"] if "cache" in out else out["past_key_values"]

    def _pad(self, seqs: list[list[int]], side: str) -> tuple[Any, Any, Any]:
        """Padded ids, attention mask and position ids (counting real tokens only)."""
        import torch  # optional heavy dependency (mirage[eval])

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
            ids[b, sl] = torch.tensor(s, dtype=torch.long)
            mask[b, sl] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _batches(self, lengths: Sequence[int], size: int) -> Iterator[list[int]]:
        """Indices grouped longest first, so each batch pads little and memory peaks early."""
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        for start in range(0, len(order), size):
            yield order[start : start + size]

    # ------------------------------------------------------------------ requests
    def score_targets(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        """Teacher-forced log-probability of every target token, prompts batched by length."""
        import torch  # optional heavy dependency (mirage[eval])

        if len(prompts) != len(targets):
            raise ValueError("prompts and targets differ in length")
        t_ids = self.encode_many(targets)
        for t, ids in zip(targets, t_ids):
            if not ids:
                raise MirageInputError(f"target {t!r} has no tokens", self.ref)
        p_ids = [self._prompt_ids(p, len(t), ids) for p, t, ids in zip(prompts, t_ids, self.encode_many(prompts))]
        results: list[TargetScore | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) + len(t_ids[i]) for i in range(len(prompts))], self.batch_size):
            seqs = [p_ids[i] + t_ids[i] for i in batch]
            ids, mask, pos = self._pad(seqs, self.padding_side)
            if self.padding_side == "left":
                # every target ends the row, so the last T+1 positions hold all needed logits
                longest = max(len(t_ids[i]) for i in batch)
                logits, _ = self._forward(ids, mask, pos, keep=longest + 1)
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                rows = [logp[b, longest - len(t_ids[i]) :] for b, i in enumerate(batch)]
            else:
                logits, _ = self._forward(ids, mask, pos)
                logp = torch.log_softmax(logits.float(), dim=-1)
                rows = [logp[b, len(p_ids[i]) - 1 : len(p_ids[i]) - 1 + len(t_ids[i])] for b, i in enumerate(batch)]
            for b, i in enumerate(batch):
                tgt = torch.tensor(t_ids[i], device=rows[b].device)
                lp = rows[b].gather(-1, tgt[:, None])[:, 0]
                results[i] = TargetScore(
                    lp.double().cpu().numpy(), tuple(self.tokenizer.convert_ids_to_tokens(t_ids[i]))
                )
        return _filled(results)

    def score_choices(self, prompts: Sequence[str], choices: Sequence[Sequence[str]]) -> list[ChoiceScore]:
        """Each prompt is run once; its KV cache is repeated over its options, which are then
        scored together in one pass (lm-eval re-encodes the prompt for every option)."""
        import torch  # optional heavy dependency (mirage[eval])

        if len(prompts) != len(choices):
            raise ValueError("prompts and choices differ in length")
        flat = self.encode_many([c for opts in choices for c in opts])
        bounds = np.cumsum([0] + [len(opts) for opts in choices])
        c_ids = [flat[bounds[i] : bounds[i + 1]] for i in range(len(choices))]
        for opts, enc in zip(choices, c_ids):
            if not opts or any(not e for e in enc):
                raise MirageInputError(f"options {list(opts)!r} include one with no tokens", self.ref)
        p_ids = [
            self._prompt_ids(p, max(len(e) for e in enc), ids)
            for p, enc, ids in zip(prompts, c_ids, self.encode_many(prompts))
        ]
        results: list[ChoiceScore | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) for i in range(len(prompts))], self.batch_size):
            ids, mask, pos = self._pad([p_ids[i] for i in batch], "left")
            last_logits, cache = self._forward(ids, mask, pos, keep=1, use_cache=True)
            first = torch.log_softmax(last_logits[:, -1].float(), dim=-1)  # predicts each option's first token
            k = max(len(c_ids[i]) for i in batch)
            width = max(len(e) for i in batch for e in c_ids[i])
            opt_ids = torch.full((len(batch) * k, width), self.pad_id, dtype=torch.long)
            opt_mask = torch.zeros_like(opt_ids)
            for b, i in enumerate(batch):
                for j, e in enumerate(c_ids[i]):
                    opt_ids[b * k + j, : len(e)] = torch.tensor(e)
                    opt_mask[b * k + j, : len(e)] = 1
            cache.batch_repeat_interleave(k)
            full_mask = torch.cat([mask.repeat_interleave(k, 0), opt_mask.to(self.device)], dim=1)
            start = torch.tensor([len(p_ids[i]) for i in batch], device=self.device).repeat_interleave(k)
            opt_pos = start[:, None] + torch.arange(width, device=self.device)[None, :]
            opt_logits, _ = self._forward(opt_ids.to(self.device), full_mask, opt_pos, cache=cache, use_cache=True)
            logp = torch.log_softmax(opt_logits.float(), dim=-1)
            for b, i in enumerate(batch):
                sums, lens = [], []
                for j, e in enumerate(c_ids[i]):
                    row = b * k + j
                    total = first[b, e[0]].double()
                    if len(e) > 1:
                        tail = torch.tensor(e[1:], device=logp.device)
                        total = total + logp[row, : len(e) - 1].gather(-1, tail[:, None]).double().sum()
                    sums.append(float(total))
                    lens.append(len(e))
                results[i] = ChoiceScore(tuple(sums), tuple(lens))
        return _filled(results)

    def generate(self, prompts: Sequence[str], stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        """Greedy continuations with a key-value cache, cut before the first stop string."""
        import torch  # optional heavy dependency (mirage[eval])

        stop = [s for s in stop if s]
        p_ids = [self._prompt_ids(p, max_new_tokens, ids) for p, ids in zip(prompts, self.encode_many(prompts))]
        results: list[Generation | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) for i in range(len(prompts))], self.batch_size):
            ids, mask, pos = self._pad([p_ids[i] for i in batch], "left")
            logits, cache = self._forward(ids, mask, pos, keep=1, use_cache=True)
            new: list[list[int]] = [[] for _ in batch]
            done = [False] * len(batch)
            next_pos = pos[:, -1:] + 1
            for _ in range(max_new_tokens):
                nxt = logits[:, -1].float().argmax(-1)
                for b, tok in enumerate(nxt.tolist()):
                    if done[b]:
                        continue
                    if tok == self.eos_id:
                        done[b] = True
                        continue
                    new[b].append(tok)
                    if stop and any(s in self.tokenizer.decode(new[b]) for s in stop):
                        done[b] = True
                if all(done):
                    break
                mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=mask.device)], dim=1)
                logits, cache = self._forward(nxt[:, None], mask, next_pos, cache=cache, use_cache=True)
                next_pos = next_pos + 1
            for b, i in enumerate(batch):
                text = str(self.tokenizer.decode(new[b], skip_special_tokens=True))
                cut = min((text.find(s) for s in stop if s in text), default=len(text))
                text = text[:cut]
                results[i] = Generation(text, self.tokens_of(text))
        return _filled(results)


T = TypeVar("T")


def _filled(results: list[T | None]) -> list[T]:
    """The results of a request, every slot filled (each prompt is in exactly one batch)."""
    out = [r for r in results if r is not None]
    assert len(out) == len(results), "a prompt was left out of every batch"
    return out


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def check_checkpoint(ref: str, where: str = "model") -> None:
    """Raise :class:`MirageInputError` if a local checkpoint's config or weight files are not
    whole: ``config.json`` must parse, every ``*.safetensors`` file must have a valid header that
    covers the whole file (what a truncated copy lacks), and a sharded checkpoint's index must
    name files that exist. Cheap: headers only, no tensor is read."""
    path = Path(ref)
    if not path.is_dir():
        return
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MirageInputError(f"{where}: unreadable config.json ({str(exc).splitlines()[0]})", str(path)) from None
    for index in sorted(path.glob("*.index.json")):
        try:
            files = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise MirageInputError(f"{where}: malformed checkpoint index", str(index)) from None
        missing = sorted(f for f in files if not (path / f).is_file())
        if missing:
            raise MirageInputError(
                f"{where}: the index names missing weight files {', '.join(missing[:3])}", str(index)
            )
    for weights in sorted(path.glob("*.safetensors")):
        try:
            from safetensors import safe_open  # comes with transformers (mirage[eval]); checked headers only

            with safe_open(str(weights), framework="numpy"):
                pass
        except ImportError:
            return  # transformers' loader will check them
        except Exception as exc:  # noqa: BLE001 -- safetensors raises its own SafetensorError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MirageInputError(
                f"{where}: damaged weight file ({reason}); is the copy complete?", str(weights)
            ) from None


def checkpoint_fingerprint(ref: str) -> str:
    """Config text plus weight-file sizes and mtimes of a local checkpoint (cheap for 7B files too);
    for a hub id the id and revision already identify it."""
    path = Path(ref)
    if not path.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name == "config.json":
            h.update(f.read_bytes())
        elif f.suffix in WEIGHT_SUFFIXES:
            st = f.stat()
            h.update(json.dumps([f.name, st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:16]
