"""The ``Backend`` protocol over an OpenAI-compatible ``/v1/completions`` server (vLLM, llama.cpp).

Every request is greedy (``temperature: 0``) and independent, so requests of a batch are sent
concurrently (at most ``max_concurrency`` at a time):

* **Target log-probabilities** (teacher forcing): the prompt and the target are sent as one text
  with ``echo: true, logprobs: 1, max_tokens: 1``; the server returns the log-probability of every
  prompt token. The prompt/target boundary is found from the returned tokens and their text
  offsets (the character span of the target inside the echoed text), never guessed from counts:
  a token that spans the boundary, or a target the server tokenises differently from the model's
  tokenizer, is an error rather than a silently wrong number. vLLM's ``prompt_logprobs`` is used
  when ``prompt_logprobs: vllm`` is set, or when an echoed answer carries no log-probs but that.
* **Multiple choice**: one such scored request per option; an option's log-prob is the sum over
  its tokens, its length their count (as in process).
* **Generation**: ``max_tokens`` = the limit, the task's stop strings, greedy; the text is cut
  before the first stop string the server may have left in. Each answer's log-probs are checked:
  a generated token less probable than the best alternative means the server did not decode
  greedily (llama-cpp-python's default ``repeat_penalty`` of 1.1 does that), which is an error.

Tokens in the records come from the model's tokenizer (``tokenizer:`` in the family spec, which
must be the one the server uses), so records from a server and from the in-process backend have
the same columns, token strings and generation limit. ``add_bos`` puts the tokenizer's BOS token
text in front of every prompt (an empty prompt always gets it, as in process).

Before its first scored request the backend checks that the server's echoed log-probabilities are
aligned with its tokens: the greedy next token after a prompt must have the same log-probability
when generated as when echoed. llama-cpp-python's server fails this unless the prompt starts with
BOS (it pairs each echoed token with the distribution *after* it); the check turns that into one
clear error instead of wrong numbers.

Answers are kept in a :class:`~mirage.evaluate.journal.RequestJournal` when one is given, so a
killed run resumes without sending answered requests again.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MirageInputError
from ..io.family import ServerSpec
from .backends import ChoiceScore, Generation, TargetScore
from .client import CompletionsClient, ServerError, _snippet
from .journal import RequestJournal, request_key

ALIGNMENT_TOLERANCE = 1e-2  # nats; a misaligned server is off by about one nat or more
GREEDY_TOLERANCE = 1e-4  # nats; a greedy token is the most probable one up to float rounding
_PROBES = 3  # samples tried for the alignment check before it is given up as not checkable


class OpenAICompletionsBackend:
    """Scores and generates through an OpenAI-compatible completions server."""

    def __init__(
        self, server: ServerSpec, journal: RequestJournal | None = None, *, sleep: Callable[[float], None] | None = None
    ):
        self.server = server
        self.where = f"server {server.base_url} (model {server.model!r})"
        if server.tokenizer is None:
            raise MirageInputError("'backend: openai' needs 'tokenizer' (the tokenizer the server uses)", self.where)
        api_key = None
        if server.api_key_env:
            api_key = os.environ.get(server.api_key_env)
            if not api_key:
                raise MirageInputError(
                    f"environment variable {server.api_key_env} (api_key_env) is not set or empty", self.where
                )
        try:
            from transformers import AutoTokenizer  # optional heavy dependency (mirage[serve])

            self.tokenizer = AutoTokenizer.from_pretrained(server.tokenizer)
        except (OSError, ValueError) as exc:
            raise MirageInputError(f"cannot load tokenizer: {str(exc).splitlines()[0]}", server.tokenizer) from None
        tok = self.tokenizer
        self.bos_text = next((t for t in (tok.bos_token, tok.eos_token) if t), None)
        if server.add_bos and self.bos_text is None:
            raise MirageInputError("'add_bos' is set but the tokenizer has no BOS or EOS token", server.tokenizer)
        kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.client = CompletionsClient(
            server.base_url,
            api_key=api_key,
            timeout_s=server.timeout_s,
            max_retries=server.max_retries,
            max_concurrency=server.max_concurrency,
            name=self.where,
            **kwargs,
        )
        self.journal = journal
        self._mode = server.prompt_logprobs
        self._aligned = False
        self._align_lock = threading.Lock()

    def use_journal(self, path: str | Path) -> None:
        """Keep answers in, and reuse them from, the journal at ``path`` (the evaluation puts it
        beside the shard's unfinished chunks, so it goes when the shard is finished)."""
        if self.journal is not None:
            self.journal.close()
        self.journal = RequestJournal(path)

    def close(self) -> None:
        """Close the connection pool and the journal."""
        self.client.close()
        if self.journal is not None:
            self.journal.close()

    # ------------------------------------------------------------------ description
    def num_parameters(self) -> int:
        """A server does not report its size: the family spec's ``params`` gives it."""
        raise MirageInputError(
            "a server does not report its parameter count; set 'params' in the family spec", self.where
        )

    def describe(self) -> dict:
        """What identifies the numbers (never the API key)."""
        return {
            "backend": "openai",
            "base_url": self.server.base_url,
            "model": self.server.model,
            "tokenizer": self.server.tokenizer,
        }

    # ------------------------------------------------------------------ tokenisation
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` in the server's tokenizer (no special tokens)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids) if text else []

    def tokens_of(self, text: str) -> tuple[str, ...]:
        """The tokens of ``text`` as strings (empty for no text)."""
        return tuple(self.tokenizer.convert_ids_to_tokens(self.encode(text))) if text else ()

    def _prefix(self, prompt: str) -> str:
        if self.server.add_bos or not prompt:
            if self.bos_text is None:
                raise MirageInputError(
                    "an empty prompt needs a BOS or EOS token and the tokenizer has neither", self.server.tokenizer
                )
            return self.bos_text + prompt
        return prompt

    # ------------------------------------------------------------------ requests
    def _body(self, prompt: str, **fields: Any) -> dict:
        body = {"model": self.server.model, "prompt": prompt, "temperature": 0}
        body.update(fields)
        body.update(self.server.request)
        return body

    def _score_body(self, text: str) -> dict:
        if self._mode == "vllm":
            return self._body(text, max_tokens=1, prompt_logprobs=0)
        return self._body(text, max_tokens=1, echo=True, logprobs=1)

    def _answers(self, kind: str, bodies: Sequence[dict], parse: Callable[[int, dict], Any]) -> list[Any]:
        """Every body's parsed answer: from the journal when it has one, else from the server
        (concurrently), each saved to the journal as soon as it arrives."""
        keys = [request_key(kind, b) for b in bodies]
        out: list[Any] = [self.journal.get(k) if self.journal is not None else None for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]

        def fetch(i: int) -> Any:
            value = parse(i, self.client.post("/completions", bodies[i]))
            if self.journal is not None:
                self.journal.put(keys[i], value)
            return value

        for i, value in zip(todo, self.client.map(fetch, todo)):
            out[i] = value
        return out

    def score_targets(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        """Target log-probabilities from the echoed prompt log-probs of ``prompt + target``."""
        if len(prompts) != len(targets):
            raise ValueError("prompts and targets differ in length")
        t_ids = [self.encode(t) for t in targets]
        for t, ids in zip(targets, t_ids):
            if not ids:
                raise MirageInputError(f"target {t!r} has no tokens", self.server.tokenizer)
        self._check_alignment(prompts, targets)
        bodies = [self._score_body(self._prefix(p) + t) for p, t in zip(prompts, targets)]
        values = self._answers(
            "score", bodies, lambda i, ans: self._target_logprobs(ans, prompts[i], targets[i], t_ids[i])
        )
        return [
            TargetScore(np.asarray(v, dtype=np.float64), tuple(self.tokenizer.convert_ids_to_tokens(ids)))
            for v, ids in zip(values, t_ids)
        ]

    def score_choices(self, prompts: Sequence[str], choices: Sequence[Sequence[str]]) -> list[ChoiceScore]:
        """Each option's summed log-probability, one echo request per option."""
        if len(prompts) != len(choices):
            raise ValueError("prompts and choices differ in length")
        for opts in choices:
            if not opts:
                raise MirageInputError("a sample has no options", self.where)
        flat_p = [p for p, opts in zip(prompts, choices) for _ in opts]
        flat_c = [c for opts in choices for c in opts]
        scored = iter(self.score_targets(flat_p, flat_c))
        out = []
        for opts in choices:
            part = [next(scored) for _ in opts]
            out.append(ChoiceScore(tuple(float(s.logprobs.sum()) for s in part), tuple(len(s.logprobs) for s in part)))
        return out

    def generate(self, prompts: Sequence[str], stop: Sequence[str], max_new_tokens: int) -> list[Generation]:
        """Greedy completions (temperature 0) with the stop strings, checked for greediness."""
        stop = [s for s in stop if s]
        fields: dict[str, Any] = {"max_tokens": max_new_tokens, "logprobs": 1}  # log-probs: the greedy check
        if stop:
            fields["stop"] = list(stop)
        bodies = [self._body(self._prefix(p), **fields) for p in prompts]
        texts = self._answers("generate", bodies, lambda i, ans: self._generated_text(ans))
        out = []
        for text in texts:
            cut = min((text.find(s) for s in stop if s in text), default=len(text))
            out.append(Generation(text[:cut], self.tokens_of(text[:cut])))
        return out

    # ------------------------------------------------------------------ answers
    def _choice(self, answer: Any) -> dict:
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServerError(f"/completions answered without choices: {_snippet(json.dumps(answer))}", self.where)
        return choices[0]

    def _generated_text(self, answer: Any) -> str:
        """The generated text, after checking that every token was the most probable one."""
        choice = self._choice(answer)
        text = choice.get("text")
        if not isinstance(text, str):
            raise ServerError(f"/completions answered without text: {_snippet(json.dumps(answer))}", self.where)
        lp = choice.get("logprobs")
        if (
            isinstance(lp, dict)
            and isinstance(lp.get("token_logprobs"), list)
            and isinstance(lp.get("top_logprobs"), list)
        ):
            for k, (value, top) in enumerate(zip(lp["token_logprobs"], lp["top_logprobs"])):
                best = (
                    max((v for v in top.values() if isinstance(v, (int, float))), default=None)
                    if isinstance(top, dict)
                    else None
                )
                if isinstance(value, (int, float)) and best is not None and value < best - GREEDY_TOLERANCE:
                    raise ServerError(
                        f"generation is not greedy: token {k + 1} {lp['tokens'][k]!r} has log p {value:.4f} but the most "
                        f"probable one {best:.4f} (a repetition penalty? llama-cpp-python applies repeat_penalty 1.1 "
                        "unless told otherwise: add 'request: {repeat_penalty: 1.0}' to this model)",
                        self.where,
                    )
        return text

    def _echoed(self, answer: Any) -> tuple[list[str], list[float | None]] | None:
        """Token strings and log-probs of an echoed prompt, or ``None`` when the answer has none."""
        choice = self._choice(answer)
        lp = choice.get("logprobs")
        if (
            isinstance(lp, dict)
            and isinstance(lp.get("tokens"), list)
            and isinstance(lp.get("token_logprobs"), list)
            and len(lp["tokens"]) == len(lp["token_logprobs"])
            and any(v is not None for v in lp["token_logprobs"])
        ):
            return [str(t) for t in lp["tokens"]], list(lp["token_logprobs"])
        return None

    def _no_logprobs(self, answer: Any) -> ServerError:
        choice = self._choice(answer)
        got = {k: choice.get(k) for k in ("logprobs", "prompt_logprobs") if k in choice}
        return ServerError(
            "does not return prompt log-probabilities for an echoed prompt (it answered "
            f"{_snippet(json.dumps(got) if got else 'no logprobs field', 160)}); mirage needs echo with logprobs on "
            "/v1/completions (llama-cpp-python: start it with --logits_all true) or vLLM's prompt_logprobs",
            self.where,
        )

    def _target_logprobs(self, answer: Any, prompt: str, target: str, t_ids: list[int]) -> list[float]:
        if self._mode == "vllm" or (
            self._mode == "auto"
            and self._echoed(answer) is None
            and isinstance(self._choice(answer).get("prompt_logprobs"), list)
        ):
            return self._vllm_logprobs(answer, target, t_ids)
        echoed = self._echoed(answer)
        if echoed is None:
            raise self._no_logprobs(answer)
        tokens, values = echoed
        span = self._target_span(tokens, prompt, target)
        local = [self.tokenizer.decode([i]) for i in t_ids]
        served = [tokens[i] for i in span]
        if len(served) != len(local) or any(a != b for a, b in zip(served, local) if a and "\ufffd" not in b):
            raise ServerError(
                f"tokenises target {target!r} as {served} where tokenizer {self.server.tokenizer} gives "
                f"{local}; 'tokenizer' must be the one the server uses",
                self.where,
            )
        out = []
        for k, i in enumerate(span):
            v = values[i]
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ServerError(
                    f"gave no finite log-probability ({v!r}) for token {k + 1} of target {target!r}", self.where
                )
            out.append(float(v))
        return out

    def _target_span(self, tokens: list[str], prompt: str, target: str) -> list[int]:
        """Indices of the target's tokens: those whose characters lie inside the target's span of
        the echoed text (offsets are the running lengths of the returned token strings, which
        is what ``text_offset`` means; servers disagree on whether it counts a BOS)."""
        starts, pos = [], 0
        for t in tokens:
            starts.append(pos)
            pos += len(t)
        echoed = "".join(tokens)
        at = echoed.find(prompt + target)
        if at < 0:
            raise ServerError(
                f"echoed a text that does not contain the prompt and target sent "
                f"(target {target!r}; echoed ...{_snippet(echoed[-80:], 80)!r})",
                self.where,
            )
        begin, end = at + len(prompt), at + len(prompt) + len(target)
        span = [i for i, s in enumerate(starts) if begin <= s < end and tokens[i]]
        straddles = [i for i, s in enumerate(starts) if s < begin < s + len(tokens[i]) or s < end < s + len(tokens[i])]
        if straddles or not span:
            raise ServerError(
                f"tokenises the prompt and target {target!r} with a token across their boundary "
                f"({[tokens[i] for i in straddles]}); end prompts without whitespace and start targets with it",
                self.where,
            )
        return span

    def _vllm_logprobs(self, answer: Any, target: str, t_ids: list[int]) -> list[float]:
        """VLLM's ``prompt_logprobs``: one entry per prompt token (``None`` first), each a mapping
        from token id to ``{"logprob": ...}`` that holds the prompt token itself."""
        entries = self._choice(answer).get("prompt_logprobs")
        if not isinstance(entries, list) or len(entries) < len(t_ids):
            raise self._no_logprobs(answer)
        out = []
        for k, (entry, tid) in enumerate(zip(entries[-len(t_ids) :], t_ids)):
            item = entry.get(str(tid)) if isinstance(entry, dict) else None
            value = item.get("logprob") if isinstance(item, dict) else item
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ServerError(
                    f"prompt_logprobs lack token {k + 1} of target {target!r} (id {tid}); the server "
                    f"tokenises it differently or gave no value",
                    self.where,
                )
            out.append(float(value))
        return out

    # ------------------------------------------------------------------ alignment check
    def _check_alignment(self, prompts: Sequence[str], targets: Sequence[str]) -> None:
        """Greedy next token: its log-prob when generated must equal its log-prob when echoed."""
        if self._aligned or self._mode == "vllm":
            return
        with self._align_lock:
            if self._aligned:
                return
            for prompt in list(prompts)[:_PROBES]:
                body = self._body(self._prefix(prompt), max_tokens=1, logprobs=1)
                gen = self._answers("probe-generate", [body], lambda i, ans: self._first_generated(ans))[0]
                token, generated = gen
                if not token or generated is None:
                    continue  # EOS or a partial character: try the next prompt
                echo_body = self._score_body(self._prefix(prompt) + token)
                parse = functools.partial(self._probe_answer, prompt, token)
                echoed = self._answers("probe-echo", [echo_body], parse)[0][0]
                if echoed is None:
                    continue
                if abs(echoed - generated) > ALIGNMENT_TOLERANCE:
                    raise ServerError(
                        f"its echoed prompt log-probabilities are misaligned: the greedy token {token!r} after a prompt "
                        f"has log p {generated:.4f} when generated but {echoed:.4f} when echoed (llama-cpp-python "
                        "pairs each echoed token with the next position's distribution unless the prompt starts with "
                        "BOS: set 'add_bos: true' for this model, and for its in-process counterpart)",
                        self.where,
                    )
                break
            self._aligned = True

    def _first_generated(self, answer: Any) -> list:
        lp = self._choice(answer).get("logprobs")
        if not isinstance(lp, dict) or not lp.get("tokens") or not lp.get("token_logprobs"):
            raise self._no_logprobs(answer)
        value = lp["token_logprobs"][0]
        return [str(lp["tokens"][0]), float(value) if isinstance(value, (int, float)) else None]

    def _probe_answer(self, prompt: str, token: str, index: int, answer: dict[str, Any]) -> list[float | None]:
        """The probe's parsed answer: the echoed log-probability of ``token`` after ``prompt``."""
        return [self._probe_value(answer, prompt, token)]

    def _probe_value(self, answer: Any, prompt: str, token: str) -> float | None:
        echoed = self._echoed(answer)
        if echoed is None:
            raise self._no_logprobs(answer)
        tokens, values = echoed
        try:
            span = self._target_span(tokens, prompt, token)
        except ServerError:
            return None  # the token merges with the prompt when re-tokenised: not checkable here
        value = values[span[0]] if len(span) == 1 else None
        return float(value) if isinstance(value, (int, float)) else None
