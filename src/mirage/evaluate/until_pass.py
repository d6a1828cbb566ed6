"""``mirage eval --until-pass K``: sample each item until its first correct answer, or ``K`` times.

A pass rate far below one item in the test set cannot be seen in greedy outputs (0 of 2,000 is
"below 0.15 %"), but it can be measured by sampling: an item with pass probability ``3e-4`` passes
within 2,000 samples more often than not (Hu et al. 2024, PassUntil). For every item this module
draws samples at a temperature until one is an exact match (as ``mirage analyze`` scores it:
:func:`mirage.schema.answers.answer_matches`) or ``K`` were drawn, and records the attempts
(:mod:`mirage.schema.until_pass` has the columns); ``mirage analyze`` turns them into a pass rate
per sample with an exact interval (:mod:`mirage.stats.pass_until`).

**Same samples on every run.** The sample drawn at step ``j`` of attempt ``a`` of an item is a
function of the model's next-token distribution and one uniform number, computed from a hash of
(seed, the item's prompt and target, ``a``, ``j``) (SplitMix64; inverse-CDF sampling over the
vocabulary): it does not depend on which other rows share the batch, on the batch size or on
where a run stopped, and the same item gets the same random numbers under every model (common
random numbers, so models are compared on equal draws).

**Batched across items.** Items are sampled in rounds; in each round every item that has not
passed draws its next block of attempts (1, 1, 2, 4, ... up to :data:`MAX_BLOCK` at a time, so an
item that passes early wastes few draws and a hard one is drawn in large batches). A round's rows
are batched (``batch_size`` rows a forward pass); each prompt is encoded once per batch and its
keys/values shared by its rows, rows that finish leave the batch, and a row stops as soon as its
text can no longer be an exact match (:func:`mirage.schema.answers.may_still_match`; not for the
first ``keep_outputs`` attempts of an item, whose outputs are kept whole, nor with an answer
pattern).

**Resumable.** Every finished batch is appended to the shard's journal (the file the server
backend keeps its answered requests in, :mod:`mirage.evaluate.journal`), keyed by the rows it
drew. Rounds and batches are a deterministic function of the results before them, so a rerun
replays the journal, reaches the same batches, and draws only the ones that were never finished:
a killed run resumes without redrawing what it finished and ends with the records of an
uninterrupted one (float for float, with the same batch size and thread count).

**The teacher-forced check.** ``target_stop_logprob`` is ``log p(target tokens, then a stop)`` at
the sampling temperature: the probability that one sample is exactly the target's tokens followed
by EOS or a token that starts with a stop string. It is the probability of the target's own
spelling; other spellings that also match (another tokenisation, surrounding whitespace) add to
the real pass rate, so it is a lower bound of it.

Only the in-process transformers backend samples: an OpenAI-compatible server cannot be made to
use mirage's random numbers, and its log-probabilities of the stop tokens (EOS and every token
that starts with a stop string) are not all returned, so the check could not be made.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import MirageInputError
from ..io.tasks import Sample, Task
from ..schema.answers import answer_matches, may_still_match
from ..schema.checks import check_seed
from ..schema.until_pass import UNTIL_PASS_FIELDS
from .backends import HFCausalLM
from .journal import RequestJournal, request_key

MAX_LIMIT = 10_000_000  # attempts per item; the counts fit anywhere, the time is the user's
MAX_BLOCK = 64  # most attempts one item draws in one round
TASK_SUFFIX = ".until-pass"  # its own task name, so greedy and sampled shards of a task coexist
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class UntilPass:
    """How ``mirage eval --until-pass`` samples: at most ``limit`` attempts per item, at
    ``temperature``, seeded by ``seed``; the outputs of an item's first ``keep_outputs`` attempts
    are stored in its record."""

    limit: int
    temperature: float = 1.0
    seed: int = 0
    keep_outputs: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, (int, np.integer)):
            raise MirageInputError(f"must be a whole number of attempts, got {self.limit!r}", "--until-pass")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise MirageInputError(
                f"must be from 1 to {MAX_LIMIT:,} attempts per item, got {self.limit:,}", "--until-pass"
            )
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 100:
            raise MirageInputError(
                f"must be above 0 and at most 100 (greedy decoding is eval without --until-pass), got {t!r}",
                "--temperature",
            )
        check_seed(self.seed)
        if isinstance(self.keep_outputs, bool) or not 0 <= self.keep_outputs <= 1000:
            raise MirageInputError(f"must be from 0 to 1000, got {self.keep_outputs!r}", "keep_outputs")

    def identity(self) -> dict[str, Any]:
        """What the sampled records depend on (part of the shard's configuration hash)."""
        return {
            "limit": int(self.limit),
            "temperature": float(self.temperature),
            "seed": int(self.seed),
            "keep_outputs": int(self.keep_outputs),
            "sampler": 1,  # the random numbers and the sampling rule; changed only with them
        }

    def task_name(self, name: str) -> str:
        """The task name of the sampled shard: ``arithmetic_2_digit_add.until-pass``."""
        return f"{name}{TASK_SUFFIX}"


@dataclass(frozen=True)
class ItemAttempts:
    """What sampling one item until its first pass found: ``attempts`` counted (up to and
    including the first pass, else the limit), the ``first_pass`` index (None if none passed) and
    the outputs of the first attempts."""

    attempts: int
    first_pass: int | None
    outputs: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Whether a sample was an exact match."""
        return self.first_pass is not None


# ----------------------------------------------------------------------------- random numbers


def item_key(seed: int, prompt: str, target: str) -> int:
    """A 64-bit key of an item's random numbers: the seed and the item's text."""
    digest = hashlib.sha256(json.dumps([int(seed), prompt, target], ensure_ascii=False).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (uint64 in, uint64 out; wraps modulo 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def uniforms(keys: np.ndarray, attempts: np.ndarray, step: int) -> np.ndarray:
    """One uniform number in [0, 1) per row, a function of (key, attempt, step) only.

    >>> u = uniforms(np.array([1, 1], dtype=np.uint64), np.array([0, 1]), 0)
    >>> bool(0 <= u.min() and u.max() < 1 and u[0] != u[1])
    True
    """
    with np.errstate(over="ignore"):
        a = _mix(keys.astype(np.uint64) + (attempts.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
        z = _mix(a + np.uint64(step + 1) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


# ----------------------------------------------------------------------------- the schedule


def next_block(drawn: int, limit: int) -> int:
    """Attempts an item draws in its next round: as many as it has drawn (at least 1, at most
    :data:`MAX_BLOCK`), never beyond the limit.

    >>> [next_block(d, 1000) for d in (0, 1, 2, 4, 64, 999)]
    [1, 1, 2, 4, 64, 1]
    """
    return max(0, min(max(1, drawn), MAX_BLOCK, limit - drawn))


@dataclass
class _ItemState:
    drawn: int = 0
    first_pass: int | None = None
    outputs: dict[int, str] = field(default_factory=dict)

    def finished(self, limit: int) -> bool:
        return self.first_pass is not None or self.drawn >= limit


@dataclass(frozen=True)
class SamplingStats:
    """Samples drawn in this run and samples replayed from the journal (batches a killed run
    finished), over a shard."""

    drawn: int = 0
    reused: int = 0


def sample_until_pass(
    lm: HFCausalLM,
    samples: Sequence[Sample],
    stop: Sequence[str],
    max_new_tokens: int,
    settings: UntilPass,
    journal: RequestJournal | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[list[ItemAttempts], SamplingStats]:
    """Sample every item of ``samples`` until its first pass or ``settings.limit`` attempts
    (module docstring), in rounds batched across items; finished batches are replayed from and
    appended to ``journal``. ``on_batch(drawn, reused)`` is called after every batch with the
    running totals of samples."""
    limit = settings.limit
    keys = np.array([item_key(settings.seed, s.prompt, s.target) for s in samples], dtype=np.uint64)
    regexes = [re.compile(s.output_regex) if s.output_regex else None for s in samples]
    drawer = _Drawer(lm, stop, max_new_tokens, settings.temperature)
    prompt_ids = drawer.prompt_ids([s.prompt for s in samples])
    states = [_ItemState() for _ in samples]
    drawn = reused = 0
    while True:
        rows = [
            (i, a)
            for i, st in enumerate(states)
            if not st.finished(limit)
            for a in range(st.drawn, st.drawn + next_block(st.drawn, limit))
        ]
        if not rows:
            break
        for start in range(0, len(rows), lm.batch_size):
            batch = rows[start : start + lm.batch_size]
            key = request_key(
                "until-pass", {"rows": [[samples[i].sample_id, a] for i, a in batch], "keep": settings.keep_outputs}
            )
            saved = journal.get(key) if journal is not None else None
            if _valid_saved(saved, len(batch)):
                results = [(bool(r[0]), r[1]) for r in saved or ()]
                reused += len(batch)
            else:
                results = drawer.draw(
                    [prompt_ids[i] for i, _ in batch],
                    keys[[i for i, _ in batch]],
                    np.array([a for _, a in batch], dtype=np.int64),
                    [samples[i].target for i, _ in batch],
                    [regexes[i] for i, _ in batch],
                    np.array([a < settings.keep_outputs for _, a in batch]),
                )
                if journal is not None:  # the outputs that are kept, and whether each sample passed
                    keep = settings.keep_outputs
                    journal.put(key, [[ok, text if a < keep else None] for (_, a), (ok, text) in zip(batch, results)])
                drawn += len(batch)
            for (i, a), (ok, text) in zip(batch, results):
                st = states[i]
                if ok and (st.first_pass is None or a < st.first_pass):
                    st.first_pass = a
                if a < settings.keep_outputs and text is not None:
                    st.outputs[a] = text
            if on_batch is not None:
                on_batch(drawn, reused)
        for st in states:
            if not st.finished(limit):
                st.drawn += next_block(st.drawn, limit)
    out = []
    for st in states:
        attempts = st.first_pass + 1 if st.first_pass is not None else limit
        kept = tuple(st.outputs[a] for a in range(min(attempts, settings.keep_outputs)))
        out.append(ItemAttempts(attempts, st.first_pass, kept))
    return out, SamplingStats(drawn, reused)


def _valid_saved(saved: Any, n: int) -> bool:
    """A journal entry of a batch of ``n`` rows: ``[[passed, text or None], ...]``."""
    return (
        isinstance(saved, list)
        and len(saved) == n
        and all(
            isinstance(r, list) and len(r) == 2 and isinstance(r[0], bool) and (r[1] is None or isinstance(r[1], str))
            for r in saved
        )
    )


# ----------------------------------------------------------------------------- drawing samples


def stop_token_ids(lm: HFCausalLM, stop: Sequence[str]) -> list[int]:
    """The tokens that end a sample right where they start: EOS, and every token whose text
    starts with a stop string."""
    stops = tuple(s for s in stop if s)
    ids = {int(lm.eos_id)} if lm.eos_id is not None else set()
    if stops:
        texts = lm.tokenizer.batch_decode([[i] for i in range(len(lm.tokenizer))])
        ids |= {i for i, text in enumerate(texts) if text.startswith(stops)}
    return sorted(ids)


class _Drawer:
    """Batched sampling from one in-process model with mirage's random numbers."""

    def __init__(self, lm: HFCausalLM, stop: Sequence[str], max_new_tokens: int, temperature: float) -> None:
        self.lm = lm
        self.stop = [s for s in stop if s]
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids each prompt is sampled after (as greedy generation cuts them)."""
        return [
            self.lm._prompt_ids(p, self.max_new_tokens, ids) for p, ids in zip(prompts, self.lm.encode_many(prompts))
        ]

    def _decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.lm.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    def _texts_end(self, text: str) -> bool:
        return any(s in text for s in self.stop)

    def draw(
        self,
        prompt_ids: list[list[int]],
        keys: np.ndarray,
        attempts: np.ndarray,
        targets: list[str],
        regexes: list[re.Pattern[str] | None],
        keep_whole: np.ndarray,
    ) -> list[tuple[bool, str | None]]:
        """One sample per row: (whether it is an exact match, its output; None for a row stopped
        early because it could no longer match)."""
        import torch  # optional heavy dependency (mirage[eval]): sampling runs the model

        lm, n_rows = self.lm, len(prompt_ids)
        # each distinct prompt is encoded once; its keys/values are then shared by its rows
        distinct: dict[tuple[int, ...], int] = {}
        of_row = [distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids]
        ids, mask, pos = lm._pad([list(p) for p in distinct], "left")
        logits, cache = lm._forward(ids, mask, pos, keep=1, use_cache=True)
        index = torch.tensor(of_row, device=ids.device)
        logits, mask, next_pos = logits[index, -1], mask[index], pos[index, -1:] + 1
        cache.batch_select_indices(index)
        live = np.arange(n_rows)  # the original row of each row still in the batch
        new: list[list[int]] = [[] for _ in range(n_rows)]
        dead = np.zeros(n_rows, dtype=bool)
        for step in range(self.max_new_tokens):
            u = torch.from_numpy(uniforms(keys[live], attempts[live], step)).to(logits.device)
            probs = torch.softmax(logits.float() / self.temperature, dim=-1)
            cdf = probs.double().cumsum(-1)
            token = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
            token = token.clamp_(max=cdf.shape[-1] - 1)
            going = np.ones(len(live), dtype=bool)
            for j, tok in enumerate(token.tolist()):
                b = int(live[j])
                if tok == lm.eos_id:
                    going[j] = False
                    continue
                new[b].append(tok)
                text = self._decode(new[b])
                if self.stop and self._texts_end(text):
                    going[j] = False
                elif (
                    not keep_whole[b]
                    and regexes[b] is None
                    and "\ufffd" not in text  # a character cut in half may still become the right one
                    and not may_still_match(text, targets[b])
                ):
                    dead[b] = True
                    going[j] = False
            if not going.any():
                break
            keep = torch.from_numpy(np.flatnonzero(going)).to(logits.device)
            if len(keep) < len(live):  # finished rows leave the batch
                cache.batch_select_indices(keep)
                token, mask, next_pos = token[keep], mask[keep], next_pos[keep]
                live = live[going]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=mask.device)], dim=1)
            out, cache = lm._forward(token[:, None], mask, next_pos, cache=cache, use_cache=True)
            logits = out[:, -1]
            next_pos = next_pos + 1
        results: list[tuple[bool, str | None]] = []
        for b in range(n_rows):
            if dead[b]:
                results.append((False, None))
                continue
            text = self._decode(new[b], skip_special_tokens=True)
            text = text[: min((text.find(s) for s in self.stop if s in text), default=len(text))]
            results.append((answer_matches(text, targets[b], regexes[b]), text))
        return results


# ----------------------------------------------------------------------------- the teacher-forced check


def target_stop_logprobs(
    lm: HFCausalLM,
    samples: Sequence[Sample],
    stop: Sequence[str],
    max_new_tokens: int,
    temperature: float,
    stop_ids: Sequence[int] | None = None,
) -> list[float | None]:
    """``log p(target tokens, then a stop token)`` after each prompt at ``temperature`` (None
    where no sample can be exactly the target: it holds a stop string or is longer than
    ``max_new_tokens``). A target exactly ``max_new_tokens`` long needs no stop: the limit ends it.
    ``stop_ids`` (:func:`stop_token_ids`) may be given to save recomputing them."""
    import torch  # optional heavy dependency (mirage[eval])

    stops = [s for s in stop if s]
    stop_ids = stop_token_ids(lm, stops) if stop_ids is None else stop_ids
    t_ids = lm.encode_many([s.target for s in samples])
    drawer = _Drawer(lm, stops, max_new_tokens, temperature)
    p_ids = drawer.prompt_ids([s.prompt for s in samples])
    out: list[float | None] = [None] * len(samples)
    todo = [i for i, s in enumerate(samples) if t_ids[i] and len(t_ids[i]) <= max_new_tokens]
    todo = [i for i in todo if not any(x in samples[i].target for x in stops)]
    stop_index = torch.tensor(stop_ids, dtype=torch.long, device=lm.device)
    for batch in lm._batches([len(p_ids[i]) + len(t_ids[i]) for i in todo], lm.batch_size):
        rows = [todo[j] for j in batch]
        ids, mask, pos = lm._pad([p_ids[i] + t_ids[i] for i in rows], "left")
        longest = max(len(t_ids[i]) for i in rows)
        logits, _ = lm._forward(ids, mask, pos, keep=longest + 1)
        logp = torch.log_softmax(logits.float() / temperature, dim=-1).double()
        for b, i in enumerate(rows):
            n_t = len(t_ids[i])
            steps = logp[b, longest - n_t :]  # n_t + 1 positions: each target token, then what follows
            total = steps[:n_t].gather(-1, torch.tensor(t_ids[i], device=steps.device)[:, None]).sum()
            if n_t < max_new_tokens:
                total = total + torch.logsumexp(steps[n_t, stop_index], dim=0)
            value = float(total)
            out[i] = value if math.isfinite(value) else None
    return out


# ----------------------------------------------------------------------------- records


def until_pass_columns(
    attempts: Sequence[ItemAttempts], logprobs: Sequence[float | None], settings: UntilPass
) -> dict[str, pa.Array]:
    """The until-pass record columns of one chunk (:mod:`mirage.schema.until_pass`)."""
    n = len(attempts)
    values: dict[str, list[Any]] = {
        "until_pass": [int(settings.limit)] * n,
        "sampling_temperature": [float(settings.temperature)] * n,
        "sampling_seed": [int(settings.seed)] * n,
        "attempts": [a.attempts for a in attempts],
        "passed": [a.passed for a in attempts],
        "first_pass": [a.first_pass for a in attempts],
        "sampled_outputs": [list(a.outputs) for a in attempts],
        "target_stop_logprob": [min(0.0, v) if v is not None else None for v in logprobs],
    }
    return {f.name: pa.array(values[f.name], type=f.type) for f in UNTIL_PASS_FIELDS}


class UntilPassShard:
    """Until-pass sampling for one model's shard: adds the until-pass columns to each chunk's
    records, with the shard's journal; ``stats`` totals the samples drawn and reused."""

    def __init__(
        self, lm: Any, task: Task, max_new_tokens: int, settings: UntilPass, journal: str | Path | None
    ) -> None:
        if not isinstance(lm, HFCausalLM):
            raise MirageInputError(
                f"samples with the in-process transformers backend only, not {type(lm).__name__}", "--until-pass"
            )
        check_until_pass_task(task)
        self.lm, self.task, self.max_new_tokens, self.settings = lm, task, max_new_tokens, settings
        self.journal = RequestJournal(journal) if journal is not None else None
        self.stop_ids = stop_token_ids(lm, task.stop)
        self.stats = SamplingStats()

    def add_columns(
        self, table: pa.Table, samples: Sequence[Sample], progress: Callable[[SamplingStats], None] | None = None
    ) -> pa.Table:
        """``table`` (the chunk's records, one per sample in order) with the until-pass columns."""
        before = self.stats

        def report(drawn: int, reused: int) -> None:
            self.stats = SamplingStats(before.drawn + drawn, before.reused + reused)
            if progress is not None:
                progress(self.stats)

        attempts, _ = sample_until_pass(
            self.lm, samples, self.task.stop, self.max_new_tokens, self.settings, self.journal, report
        )
        logprobs = target_stop_logprobs(
            self.lm, samples, self.task.stop, self.max_new_tokens, self.settings.temperature, self.stop_ids
        )
        for name, column in until_pass_columns(attempts, logprobs, self.settings).items():
            table = table.append_column(name, column)
        return table

    def close(self) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()


def check_until_pass_task(task: Task) -> None:
    """Raise :class:`MirageInputError` unless the task generates answers (sampling needs them)."""
    if not task.generates:
        raise MirageInputError(
            f"samples generated answers, but the task {task.name!r} is run with --view {task.view}", "--until-pass"
        )
