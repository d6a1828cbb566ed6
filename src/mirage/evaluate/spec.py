"""Family-spec keys for serving engines and cluster resources (see docs/eval.md).

A model is evaluated in process (transformers, the default) or, with ``backend: openai``, by an
OpenAI-compatible completions server (vLLM, llama.cpp, ...)::

    - name: pythia-1b
      backend: openai
      base_url: http://gpu-node-3:8000/v1
      model: EleutherAI/pythia-1b            # the server's model name
      tokenizer: EleutherAI/pythia-1b        # the server's tokenizer: record tokens as in process
      api_key_env: VLLM_API_KEY              # optional: the key is read from this variable
      params: 1011781632                     # required: a server does not report its size

Resources for ``mirage eval --ray`` come from a ``resources`` mapping at the family level
(defaults for every model) and per model (overrides): ``num_cpus``, ``num_gpus``, ``memory``
(bytes, or ``16GiB`` / ``512MB``).

Only what changes the numbers enters a shard's hash (:meth:`ServerSpec.identity`): the server's
model name, the tokenizer, the prompt-log-prob mechanism, the BOS setting and extra request
fields. The address, the API key (never even its variable's value), concurrency, timeouts and
retries do not.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import MirageInputError

BACKENDS = ("hf", "openai")
PROMPT_LOGPROBS = ("auto", "echo", "vllm")
SERVER_KEYS = ("backend", "base_url", "model", "tokenizer", "api_key_env", "max_concurrency", "timeout",
               "max_retries", "prompt_logprobs", "request")
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class ServerSpec:
    """Where and how to reach an OpenAI-compatible completions server for one model."""

    base_url: str  # ends in /v1 (or wherever /completions lives)
    model: str  # the name the server knows the model by
    tokenizer: str | None = None  # local directory or hub id of the tokenizer the server uses
    api_key_env: str | None = None  # name of the environment variable holding the key
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 6
    prompt_logprobs: str = "auto"  # echo (OpenAI echo+logprobs), vllm (prompt_logprobs), auto
    add_bos: bool = False  # put the BOS token before every prompt
    request: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # extra JSON fields

    def identity(self) -> dict:
        """What decides the numbers this server gives (enters the shard hash)."""
        return {"backend": "openai", "model": self.model, "tokenizer": self.tokenizer,
                "tokenizer_files": tokenizer_fingerprint(self.tokenizer), "prompt_logprobs": self.prompt_logprobs,
                "add_bos": self.add_bos, "request": dict(self.request)}


def tokenizer_fingerprint(ref: str | None) -> str:
    """Hash of a local tokenizer's files (small), or ``""`` for a hub id."""
    import hashlib

    path = Path(ref) if ref else None
    if path is None or not path.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")) or f.suffix == ".model"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ResourceSpec:
    """What one (model, task) shard asks a Ray cluster for; ``None`` leaves Ray's default."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None  # bytes

    def merged(self, override: "ResourceSpec") -> "ResourceSpec":
        """These resources with every value ``override`` sets replaced."""
        return ResourceSpec(
            override.num_cpus if override.num_cpus is not None else self.num_cpus,
            override.num_gpus if override.num_gpus is not None else self.num_gpus,
            override.memory if override.memory is not None else self.memory,
        )

    def ray_options(self) -> dict:
        """Keyword arguments for ``remote_function.options``."""
        out: dict[str, Any] = {}
        if self.num_cpus is not None:
            out["num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            out["num_gpus"] = self.num_gpus
        if self.memory is not None:
            out["memory"] = self.memory
        return out


def parse_resources(value: Any, where: str, src: str) -> ResourceSpec:
    """A ``resources`` mapping; bad keys or values raise naming ``where`` in ``src``."""
    if value is None:
        return ResourceSpec()
    if not isinstance(value, dict):
        raise MirageInputError(f"{where}: 'resources' must be a mapping of {', '.join(RESOURCE_KEYS)}", src)
    bad = sorted(set(value) - set(RESOURCE_KEYS))
    if bad:
        raise MirageInputError(f"{where}: unknown resource(s) {', '.join(map(str, bad))} (allowed: {', '.join(RESOURCE_KEYS)})", src)
    numbers = {}
    for key in ("num_cpus", "num_gpus"):
        if key in value:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise MirageInputError(f"{where}: resources.{key} must be a number >= 0, got {v!r}", src)
            numbers[key] = float(v)
    memory = _parse_bytes(value["memory"], where, src) if "memory" in value else None
    return ResourceSpec(numbers.get("num_cpus"), numbers.get("num_gpus"), memory)


def _parse_bytes(value: Any, where: str, src: str) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS and float(match.group(1)) > 0:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise MirageInputError(f"{where}: resources.memory must be a positive size such as 16GiB or 512MB, got {value!r}", src)


def parse_add_bos(m: Mapping[str, Any], where: str, src: str) -> bool:
    """``add_bos`` (either backend): start every prompt with the tokenizer's BOS token."""
    add_bos = m.get("add_bos", False)
    if not isinstance(add_bos, bool):
        raise MirageInputError(f"{where}: 'add_bos' must be true or false, got {add_bos!r}", src)
    return add_bos


def parse_server(m: Mapping[str, Any], where: str, src: str, base_dir: Path, add_bos: bool = False) -> ServerSpec | None:
    """The server part of one model entry, or ``None`` for an in-process model; every key is
    checked and bad values raise one :class:`MirageInputError` naming the model and the file."""
    backend = m.get("backend", "hf")
    if backend not in BACKENDS:
        raise MirageInputError(f"{where}: 'backend' must be one of {', '.join(BACKENDS)}, got {backend!r}", src)
    server_keys = sorted(k for k in SERVER_KEYS if k in m and k != "backend")
    if backend == "hf":
        if server_keys:
            raise MirageInputError(f"{where}: {', '.join(server_keys)} only apply with 'backend: openai'", src)
        return None
    if "path" in m or "id" in m:
        raise MirageInputError(f"{where}: a server-backed model takes 'model' (the server's model name), not 'path' or 'id'", src)
    for key in ("base_url", "model"):
        if not isinstance(m.get(key), str) or not m[key].strip():
            raise MirageInputError(f"{where}: 'backend: openai' needs a non-empty '{key}'", src)
    base_url = m["base_url"].strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise MirageInputError(f"{where}: 'base_url' must start with http:// or https://, got {base_url!r}", src)
    if "params" not in m:
        raise MirageInputError(f"{where}: a server-backed model needs 'params' (a server does not report its size)", src)
    tokenizer = m.get("tokenizer")
    if not isinstance(tokenizer, str) or not tokenizer.strip():
        raise MirageInputError(f"{where}: 'backend: openai' needs 'tokenizer' (a directory or hub id of the "
                               "tokenizer the server uses)", src)
    local = Path(tokenizer).expanduser()
    local = local if local.is_absolute() else base_dir / local
    if local.exists():
        tokenizer = str(local.resolve())
    elif tokenizer.startswith((".", "/", "~")):
        raise MirageInputError(f"{where}: tokenizer {tokenizer!r} does not exist (resolved to {local.resolve()})", src)
    api_key_env = m.get("api_key_env")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env)):
        raise MirageInputError(f"{where}: 'api_key_env' must be the name of an environment variable, got {api_key_env!r}", src)
    concurrency = _positive_int(m, "max_concurrency", 8, where, src, minimum=1)
    retries = _positive_int(m, "max_retries", 6, where, src, minimum=0)
    timeout = m.get("timeout", 120.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise MirageInputError(f"{where}: 'timeout' must be a positive number of seconds, got {timeout!r}", src)
    mode = m.get("prompt_logprobs", "auto")
    if mode not in PROMPT_LOGPROBS:
        raise MirageInputError(f"{where}: 'prompt_logprobs' must be one of {', '.join(PROMPT_LOGPROBS)}, got {mode!r}", src)
    request = m.get("request", {})
    if not isinstance(request, dict) or not all(isinstance(k, str) for k in request):
        raise MirageInputError(f"{where}: 'request' must be a mapping of extra request fields", src)
    reserved = sorted(set(request) & {"model", "prompt", "echo", "logprobs", "max_tokens", "stop", "temperature", "prompt_logprobs"})
    if reserved:
        raise MirageInputError(f"{where}: 'request' may not set {', '.join(reserved)} (mirage sets them)", src)
    return ServerSpec(base_url, m["model"].strip(), tokenizer, api_key_env, concurrency, float(timeout), retries,
                      mode, add_bos, MappingProxyType(dict(request)))


def _positive_int(m: Mapping[str, Any], key: str, default: int, where: str, src: str, minimum: int) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MirageInputError(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}", src)
    return value
