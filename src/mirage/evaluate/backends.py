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
computed); a multiple-choice prompt is encoded once and its options are packed into one row after
it, each attending only to the prompt and to itself (a 4D attention mask; models that ignore one
get the prompt's cache repeated per option); generation is batched greedy decoding with left
padding and a preallocated KV cache written in place, finished rows leave the batch and it stops
as soon as every row has produced a stop string, EOS or the token limit. ``score_all`` answers all
three requests of the same prompts with one pass over each prompt (``mirage eval`` uses it where a
backend has it). Log-softmax is taken in float32 whatever the model dtype, and results are
returned as float64.
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
        self._packing: bool | None = None  # whether the model takes a 4D mask (_packing_works)
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
        t_ids = self._target_ids(targets)
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
        """Each prompt is run once; its options are then scored together in one pass from its KV
        cache (lm-eval re-encodes the prompt for every option)."""
        if len(prompts) != len(choices):
            raise ValueError("prompts and choices differ in length")
        c_ids = self._choice_ids(choices)
        p_ids = [
            self._prompt_ids(p, max(len(e) for e in enc), ids)
            for p, enc, ids in zip(prompts, c_ids, self.encode_many(prompts))
        ]
        results: list[ChoiceScore | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) for i in range(len(prompts))], self.batch_size):
            conts = [c_ids[i] for i in batch]
            prompt = self._prefill([p_ids[i] for i in batch], capacity=_packed_width(conts))
            scored = self._score_continuations(prompt, conts, keep_prompt=False)
            for i, lps in zip(batch, scored):
                results[i] = _choice_score(lps)
        return _filled(results)

    def generate(self, prompts: Sequence[str], stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        """Greedy continuations with a key-value cache, cut before the first stop string."""
        p_ids = [self._prompt_ids(p, max_new_tokens, ids) for p, ids in zip(prompts, self.encode_many(prompts))]
        results: list[Generation | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) for i in range(len(prompts))], self.batch_size):
            prompt = self._prefill([p_ids[i] for i in batch], capacity=max_new_tokens)
            for i, new in zip(batch, self._greedy(prompt, stop, max_new_tokens)):
                results[i] = self._generation(new, stop)
        return _filled(results)

    def score_all(
        self,
        prompts: Sequence[str],
        targets: Sequence[str],
        choices: Sequence[Sequence[str]] | None = None,
        stop: Sequence[str] = (),
        max_new_tokens: int = 0,
    ) -> tuple[list[TargetScore], list[ChoiceScore] | None, list[Generation] | None]:
        """All three requests for the same prompts, each prompt run through the model once.

        The same results as ``score_targets``, ``score_choices`` (when ``choices`` are given) and
        ``generate`` (when ``max_new_tokens`` > 0), up to float rounding, for a third of the prompt
        forward passes: one batched pass over the prompts fills a preallocated KV cache; the target
        and the options are scored together in one pass from it, and greedy decoding continues
        from it in place. Prompts too long for the context window of every request (their cut would
        differ between requests), or a model whose cache cannot be preallocated, take the three
        separate requests instead."""
        if len(prompts) != len(targets) or (choices is not None and len(choices) != len(prompts)):
            raise ValueError("prompts, targets and choices differ in length")
        t_ids = self._target_ids(targets)
        c_ids = self._choice_ids(choices) if choices is not None else None
        raw = self.encode_many(prompts)
        rooms = [
            max(len(t_ids[i]), max(map(len, c_ids[i])) if c_ids else 0, max_new_tokens) for i in range(len(prompts))
        ]
        p_ids = [self._prompt_ids(p, room, ids) for p, room, ids in zip(prompts, rooms, raw)]
        # a prompt cut for the longest request would be cut less (or not) for the others
        uncut = [len(p_ids[i]) == len(self._prompt_ids(prompts[i], 0, raw[i])) for i in range(len(prompts))]
        shared = [i for i in range(len(prompts)) if uncut[i]] if self._inplace_cache(1) is not None else []
        scores: list[TargetScore | None] = [None] * len(prompts)
        options: list[ChoiceScore | None] = [None] * len(prompts)
        outputs: list[Generation | None] = [None] * len(prompts)
        for batch in self._batches([len(p_ids[i]) for i in shared], self.batch_size):
            rows = [shared[j] for j in batch]
            # the target is one more continuation beside the options, the first of each prompt's
            conts = [[t_ids[i]] + (c_ids[i] if c_ids else []) for i in rows]
            prompt = self._prefill([p_ids[i] for i in rows], capacity=max(max_new_tokens, _packed_width(conts)))
            scored = self._score_continuations(prompt, conts, keep_prompt=max_new_tokens > 0)
            for i, lps in zip(rows, scored):
                scores[i] = TargetScore(lps[0], tuple(self.tokenizer.convert_ids_to_tokens(t_ids[i])))
                if c_ids:
                    options[i] = _choice_score(lps[1:])
            if max_new_tokens > 0:
                for i, new in zip(rows, self._greedy(prompt, stop, max_new_tokens)):
                    outputs[i] = self._generation(new, stop)
        in_shared = set(shared)
        rest = [i for i in range(len(prompts)) if i not in in_shared]
        if rest:
            sub_p, sub_t = [prompts[i] for i in rest], [targets[i] for i in rest]
            for i, r in zip(rest, self.score_targets(sub_p, sub_t)):
                scores[i] = r
            if choices is not None:
                for i, c in zip(rest, self.score_choices(sub_p, [choices[i] for i in rest])):
                    options[i] = c
            if max_new_tokens > 0:
                for i, g in zip(rest, self.generate(sub_p, stop, max_new_tokens)):
                    outputs[i] = g
        return (
            _filled(scores),
            _filled(options) if choices is not None else None,
            _filled(outputs) if max_new_tokens > 0 else None,
        )

    # ------------------------------------------------------------------ the pieces of a request
    def _target_ids(self, targets: Sequence[str]) -> list[list[int]]:
        t_ids = self.encode_many(targets)
        for t, ids in zip(targets, t_ids):
            if not ids:
                raise MirageInputError(f"target {t!r} has no tokens", self.ref)
        return t_ids

    def _choice_ids(self, choices: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        flat = self.encode_many([c for opts in choices for c in opts])
        bounds = np.cumsum([0] + [len(opts) for opts in choices])
        c_ids = [flat[bounds[i] : bounds[i + 1]] for i in range(len(choices))]
        for opts, enc in zip(choices, c_ids):
            if not opts or any(not e for e in enc):
                raise MirageInputError(f"options {list(opts)!r} include one with no tokens", self.ref)
        return c_ids

    def _inplace_cache(self, capacity: int) -> Any:
        """An empty KV cache whose layers write into buffers preallocated for ``capacity`` tokens
        beyond the first update, or None where the model's own cache is not a stack of plain
        full-attention layers (sliding windows, linear attention) or transformers predates
        per-layer caches (< 4.56): those keep transformers' concatenating cache."""
        try:
            from transformers.cache_utils import DynamicCache, DynamicLayer  # optional heavy dependency (mirage[eval])
        except ImportError:
            return None
        try:
            cache = DynamicCache(config=self.model.config)
        except TypeError:
            return None
        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            return None
        cache.layers = [_inplace_layer_class()(capacity) for _ in layers]
        return cache

    def _prefill(self, seqs: list[list[int]], capacity: int) -> _Prompt:
        """One forward pass over left-padded prompts into a cache with room for ``capacity`` more
        tokens; the logits of each prompt's last position predict what follows it."""
        ids, mask, pos = self._pad(seqs, "left")
        logits, cache = self._forward(ids, mask, pos, cache=self._inplace_cache(capacity), keep=1, use_cache=True)
        return _Prompt(logits[:, -1], cache, mask, pos, [len(s) for s in seqs])

    def _score_continuations(
        self, prompt: _Prompt, conts: list[list[list[int]]], keep_prompt: bool
    ) -> list[list[np.ndarray]]:
        """Log p of every token of every continuation of every prompt (float64 arrays, one per
        continuation), all in one forward pass from the prompts' cache. With ``keep_prompt`` the
        cache holds just the prompts again afterwards (generation continues from it)."""
        if self._packing_works():
            scored = self._score_packed(prompt, conts)
            if keep_prompt:
                for layer in prompt.cache.layers:
                    layer.truncate(prompt.mask.shape[1])
            return scored
        return self._score_repeated(prompt, conts, keep_prompt)

    def _score_packed(self, prompt: _Prompt, conts: list[list[list[int]]]) -> list[list[np.ndarray]]:
        """All continuations of a prompt packed into one row after it, each attending to the
        prompt and to its own earlier tokens only (a 4D mask) and positioned as if it alone
        followed the prompt: no copy of the prompt's cache, no padding to the longest option.
        The cache needs room for the longest packed row."""
        import torch  # optional heavy dependency (mirage[eval])

        n, p_width, width = len(conts), prompt.mask.shape[1], _packed_width(conts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        seg = torch.full((n, width), -1, dtype=torch.long)  # which continuation a packed token is of
        pos = torch.zeros((n, width), dtype=torch.long)
        starts: list[list[int]] = []
        for b, c in enumerate(conts):
            offsets = np.cumsum([0] + [len(e) for e in c]).tolist()
            starts.append(offsets[:-1])
            for j, e in enumerate(c):
                o = offsets[j]
                ids[b, o : o + len(e)] = torch.tensor(e)
                seg[b, o : o + len(e)] = j
                pos[b, o : o + len(e)] = prompt.lengths[b] + torch.arange(len(e))
        own = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)
        # a padding token sees itself, so that no query is left without a key (NaN in its output)
        own = (own & torch.ones(width, width, dtype=torch.bool).tril()) | torch.eye(width, dtype=torch.bool)
        sees = torch.cat([prompt.mask.bool().cpu()[:, None, :].expand(n, width, p_width), own], dim=2)
        dtype = self.model.dtype
        mask = torch.zeros(sees.shape, dtype=dtype).masked_fill_(~sees, torch.finfo(dtype).min)[:, None]
        ids = ids.to(self.device)
        logits, _ = self._forward(ids, mask.to(self.device), pos.to(self.device), cache=prompt.cache, use_cache=True)
        # the token after packed position t is predicted there; a first token by the prompt's last
        tail = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        head = torch.log_softmax(prompt.last_logits.float(), dim=-1).gather(-1, ids)
        tail_np, head_np = tail.double().cpu().numpy(), head.double().cpu().numpy()
        return [
            [np.concatenate([head_np[b, o : o + 1], tail_np[b, o : o + len(e) - 1]]) for o, e in zip(starts[b], c)]
            for b, c in enumerate(conts)
        ]

    def _score_repeated(
        self, prompt: _Prompt, conts: list[list[list[int]]], keep_prompt: bool
    ) -> list[list[np.ndarray]]:
        """:meth:`_score_packed` for models that ignore a 4D attention mask: the prompt's cache
        is repeated once per continuation slot (into a new preallocated cache if the prompt's is
        one, else in place, which ``keep_prompt`` forbids) and every continuation has a row."""
        import torch  # optional heavy dependency (mirage[eval])

        n, k = len(conts), max(len(c) for c in conts)
        width = max(len(e) for c in conts for e in c)
        first = torch.log_softmax(prompt.last_logits.float(), dim=-1)  # predicts each first token
        cont_ids = torch.full((n * k, width), self.pad_id, dtype=torch.long)
        cont_mask = torch.zeros_like(cont_ids)
        for b, c in enumerate(conts):
            for j, e in enumerate(c):
                cont_ids[b * k + j, : len(e)] = torch.tensor(e)
                cont_mask[b * k + j, : len(e)] = 1
        if _is_inplace(prompt.cache):
            cache = _repeated_cache(prompt.cache, k, width)
        elif keep_prompt:
            raise RuntimeError("a concatenating KV cache cannot be shared between requests")
        else:
            cache = prompt.cache
            cache.batch_repeat_interleave(k)
        cont_ids = cont_ids.to(self.device)
        full_mask = torch.cat([prompt.mask.repeat_interleave(k, 0), cont_mask.to(self.device)], dim=1)
        start = torch.tensor(prompt.lengths, device=self.device).repeat_interleave(k)
        cont_pos = start[:, None] + torch.arange(width, device=self.device)[None, :]
        logits, _ = self._forward(cont_ids, full_mask, cont_pos, cache=cache, use_cache=True)
        # token t + 1 of a continuation is predicted at its position t: gather all rows at once
        tail = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, cont_ids[:, 1:, None])[..., 0]
        head = first.repeat_interleave(k, 0).gather(-1, cont_ids[:, :1])
        lp = torch.cat([head, tail], dim=1).double().cpu().numpy()
        return [[lp[b * k + j, : len(e)] for j, e in enumerate(c)] for b, c in enumerate(conts)]

    def _packing_works(self) -> bool:
        """Whether this model honours a custom 4D attention mask, as :meth:`_score_packed` needs
        (not every transformers model does: some build their attention bias from a 2D mask).
        Decided once, on a tiny input, by comparison with :meth:`_score_repeated`, and only
        where the prompt's cache can be preallocated (the packed rows are cut off it again)."""
        if self._packing is None:
            self._packing = False
            if self._inplace_cache(0) is not None:
                prompts = [[1, 2, 3], [4, 5]]
                conts = [[[6, 7], [8], [9, 10, 11]], [[12]]]
                try:
                    packed = self._score_packed(self._prefill(prompts, capacity=6), conts)
                except Exception:  # noqa: BLE001 -- whatever a model raises on a mask it does not take
                    return False
                repeated = self._score_repeated(self._prefill(prompts, capacity=0), conts, keep_prompt=False)
                self._packing = all(
                    np.allclose(a, b, atol=1e-3, rtol=0) for pa, pr in zip(packed, repeated) for a, b in zip(pa, pr)
                )
        return self._packing

    def _greedy(self, prompt: _Prompt, stop: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """Greedy token ids after each prompt, each row ended by EOS (not kept), a stop string
        (kept; the caller cuts the text) or ``max_new_tokens``. The cache is extended in place;
        finished rows are dropped from the batch once they are a quarter of the rows still run
        (each drop copies the remaining rows' cache, so dropping at every finished row could
        cost more than the rows' compute it saves)."""
        import torch  # optional heavy dependency (mirage[eval])

        stop = [s for s in stop if s]
        new: list[list[int]] = [[] for _ in prompt.lengths]
        rows = list(range(len(prompt.lengths)))  # the prompt of each row of the running batch
        live = [True] * len(rows)
        logits, cache, mask = prompt.last_logits, prompt.cache, prompt.mask
        next_pos = prompt.positions[:, -1:] + 1
        for step in range(max_new_tokens):
            nxt = logits.float().argmax(-1)
            for r, tok in enumerate(nxt.tolist()):
                if not live[r]:
                    continue
                b = rows[r]
                if tok == self.eos_id:
                    live[r] = False
                    continue
                new[b].append(tok)
                if stop and any(s in self.tokenizer.decode(new[b]) for s in stop):
                    live[r] = False
            n_live = sum(live)
            if n_live == 0 or step == max_new_tokens - 1:
                break  # no forward pass for a token nobody would read
            if n_live <= 3 * len(rows) // 4:
                keep = [r for r in range(len(rows)) if live[r]]
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, next_pos, nxt = mask[index], next_pos[index], nxt[index]
                rows, live = [rows[r] for r in keep], [True] * len(keep)
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            step_logits, cache = self._forward(nxt[:, None], mask, next_pos, cache=cache, use_cache=True)
            logits = step_logits[:, -1]
            next_pos = next_pos + 1
        return new

    def _generation(self, new: list[int], stop: Sequence[str]) -> Generation:
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        cut = min((text.find(s) for s in stop if s and s in text), default=len(text))
        text = text[:cut]
        return Generation(text, self.tokens_of(text))


@dataclass
class _Prompt:
    """A batch of prompts after their forward pass: the logits at each prompt's last position,
    the KV cache, the attention mask and position ids of the left-padded batch, and each prompt's
    length in tokens."""

    last_logits: Any
    cache: Any
    mask: Any
    positions: Any
    lengths: list[int]


def _packed_width(conts: list[list[list[int]]]) -> int:
    """Tokens of the longest row of packed continuations (:meth:`HFCausalLM._score_packed`)."""
    return max(sum(len(e) for e in c) for c in conts)


def _choice_score(logprobs: Sequence[np.ndarray]) -> ChoiceScore:
    return ChoiceScore(tuple(float(lp.sum()) for lp in logprobs), tuple(len(lp) for lp in logprobs))


_INPLACE_LAYER: Any = None


def _inplace_layer_class() -> Any:
    """A transformers ``DynamicLayer`` with its keys and values in preallocated buffers (defined
    on first use: transformers is an optional dependency). Every update is written in place after
    what is cached and the layer's ``keys``/``values`` are views of the filled part, so the cache
    is never copied per step the way the concatenating layer copies it."""
    global _INPLACE_LAYER
    if _INPLACE_LAYER is not None:
        return _INPLACE_LAYER
    from transformers.cache_utils import DynamicLayer  # optional heavy dependency (mirage[eval])

    class InPlaceLayer(DynamicLayer):
        key_buffer: Any
        value_buffer: Any

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity  # tokens beyond the first update (the prompt)
            self.filled = 0

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            self.allocate(key_states, value_states, key_states.shape[0], key_states.shape[-2] + self.capacity)

        def allocate(self, keys_like: Any, values_like: Any, n: int, length: int) -> None:
            """Empty buffers of ``n`` rows and ``length`` tokens (dtype, heads, head sizes as given)."""
            self.device = keys_like.device
            self.key_buffer = keys_like.new_empty((n, keys_like.shape[1], length, keys_like.shape[-1]))
            self.value_buffer = values_like.new_empty((n, values_like.shape[1], length, values_like.shape[-1]))
            self.is_initialized = True
            self.truncate(0)

        def truncate(self, length: int) -> None:
            """Keep the first ``length`` tokens; later updates overwrite the rest."""
            self.filled = length
            self.keys, self.values = self.key_buffer[:, :, :length], self.value_buffer[:, :, :length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start, end = self.filled, self.filled + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:
                raise RuntimeError(f"KV cache preallocated for {self.key_buffer.shape[-2]} tokens, {end} needed")
            self.key_buffer[:, :, start:end] = key_states
            self.value_buffer[:, :, start:end] = value_states
            self.truncate(end)
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.truncate(self.filled)

        def repeated(self, repeats: int, capacity: int) -> InPlaceLayer:
            """A new layer holding this one's cache ``repeats`` times per row (row-major, as
            ``repeat_interleave``), with room for ``capacity`` more tokens; this one is unchanged."""
            n, length = self.key_buffer.shape[0], self.filled
            out = InPlaceLayer(capacity)
            out.allocate(self.key_buffer, self.value_buffer, n * repeats, length + capacity)
            for buf, src in ((out.key_buffer, self.key_buffer), (out.value_buffer, self.value_buffer)):
                buf.view(n, repeats, *buf.shape[1:])[:, :, :, :length] = src[:, None, :, :length]
            out.truncate(length)
            return out

    _INPLACE_LAYER = InPlaceLayer
    return InPlaceLayer


def _is_inplace(cache: Any) -> bool:
    layers = getattr(cache, "layers", None) or [None]
    return isinstance(layers[0], _inplace_layer_class())


def _repeated_cache(cache: Any, repeats: int, capacity: int) -> Any:
    """A new in-place cache holding ``cache`` repeated ``repeats`` times per row."""
    from transformers.cache_utils import DynamicCache  # optional heavy dependency (mirage[eval])

    out = DynamicCache()
    out.layers = [layer.repeated(repeats, capacity) for layer in cache.layers]
    return out


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
