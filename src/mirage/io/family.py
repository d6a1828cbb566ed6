"""Family specs: the YAML that names a model family for ``mirage eval`` (see docs/eval.md), read
and validated into :class:`FamilySpec` (:func:`load_family`).

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

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..errors import MirageInputError

BACKENDS = ("hf", "openai")
PROMPT_LOGPROBS = ("auto", "echo", "vllm")
SERVER_KEYS = (
    "backend",
    "base_url",
    "model",
    "tokenizer",
    "api_key_env",
    "max_concurrency",
    "timeout",
    "max_retries",
    "prompt_logprobs",
    "request",
)
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


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
        return {
            "backend": "openai",
            "model": self.model,
            "tokenizer": self.tokenizer,
            "tokenizer_files": tokenizer_fingerprint(self.tokenizer),
            "prompt_logprobs": self.prompt_logprobs,
            "add_bos": self.add_bos,
            "request": dict(self.request),
        }


def tokenizer_fingerprint(ref: str | None) -> str:
    """Hash of a local tokenizer's files (small), or ``""`` for a hub id."""
    path = Path(ref) if ref else None
    if path is None or not path.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (
            f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")) or f.suffix == ".model"
        ):
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
        raise MirageInputError(
            f"{where}: unknown resource(s) {', '.join(map(str, bad))} (allowed: {', '.join(RESOURCE_KEYS)})", src
        )
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
    raise MirageInputError(
        f"{where}: resources.memory must be a positive size such as 16GiB or 512MB, got {value!r}", src
    )


def parse_add_bos(m: Mapping[str, Any], where: str, src: str) -> bool:
    """``add_bos`` (either backend): start every prompt with the tokenizer's BOS token."""
    add_bos = m.get("add_bos", False)
    if not isinstance(add_bos, bool):
        raise MirageInputError(f"{where}: 'add_bos' must be true or false, got {add_bos!r}", src)
    return add_bos


def parse_server(
    m: Mapping[str, Any], where: str, src: str, base_dir: Path, add_bos: bool = False
) -> ServerSpec | None:
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
        raise MirageInputError(
            f"{where}: a server-backed model takes 'model' (the server's model name), not 'path' or 'id'", src
        )
    for key in ("base_url", "model"):
        if not isinstance(m.get(key), str) or not m[key].strip():
            raise MirageInputError(f"{where}: 'backend: openai' needs a non-empty '{key}'", src)
    base_url = m["base_url"].strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise MirageInputError(f"{where}: 'base_url' must start with http:// or https://, got {base_url!r}", src)
    if "params" not in m:
        raise MirageInputError(
            f"{where}: a server-backed model needs 'params' (a server does not report its size)", src
        )
    tokenizer = m.get("tokenizer")
    if not isinstance(tokenizer, str) or not tokenizer.strip():
        raise MirageInputError(
            f"{where}: 'backend: openai' needs 'tokenizer' (a directory or hub id of the tokenizer the server uses)",
            src,
        )
    local = Path(tokenizer).expanduser()
    local = local if local.is_absolute() else base_dir / local
    if local.exists():
        tokenizer = str(local.resolve())
    elif tokenizer.startswith((".", "/", "~")):
        raise MirageInputError(f"{where}: tokenizer {tokenizer!r} does not exist (resolved to {local.resolve()})", src)
    api_key_env = m.get("api_key_env")
    if api_key_env is not None and (
        not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env)
    ):
        raise MirageInputError(
            f"{where}: 'api_key_env' must be the name of an environment variable, got {api_key_env!r}", src
        )
    concurrency = _positive_int(m, "max_concurrency", 8, where, src, minimum=1)
    retries = _positive_int(m, "max_retries", 6, where, src, minimum=0)
    timeout = m.get("timeout", 120.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise MirageInputError(f"{where}: 'timeout' must be a positive number of seconds, got {timeout!r}", src)
    mode = m.get("prompt_logprobs", "auto")
    if mode not in PROMPT_LOGPROBS:
        raise MirageInputError(
            f"{where}: 'prompt_logprobs' must be one of {', '.join(PROMPT_LOGPROBS)}, got {mode!r}", src
        )
    request = m.get("request", {})
    if not isinstance(request, dict) or not all(isinstance(k, str) for k in request):
        raise MirageInputError(f"{where}: 'request' must be a mapping of extra request fields", src)
    reserved = sorted(
        set(request) & {"model", "prompt", "echo", "logprobs", "max_tokens", "stop", "temperature", "prompt_logprobs"}
    )
    if reserved:
        raise MirageInputError(f"{where}: 'request' may not set {', '.join(reserved)} (mirage sets them)", src)
    return ServerSpec(
        base_url,
        m["model"].strip(),
        tokenizer,
        api_key_env,
        concurrency,
        float(timeout),
        retries,
        mode,
        add_bos,
        MappingProxyType(dict(request)),
    )


def _positive_int(m: Mapping[str, Any], key: str, default: int, where: str, src: str, minimum: int) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MirageInputError(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}", src)
    return value


SCALE_COLUMNS = ("params", "non_embedding_params", "train_tokens", "train_flops", "step")
MODEL_KEYS = {"name", "path", "id", "revision", "add_bos", "resources", *SERVER_KEYS, *SCALE_COLUMNS}
FAMILY_KEYS = ("family", "models", "scale", "resources")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a family spec: its name, checkpoint (local path or hub id, revision and resolved
    commit), scales, and how it is run (a server, Ray resources, a BOS token)."""

    name: str
    ref: str  # absolute local path or hub id
    revision: str | None = None
    local: bool = True
    scales: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    commit: str | None = None  # a hub model's revision resolved to a commit (resolve_hub_commits)
    server: ServerSpec | None = None  # set: evaluated by an OpenAI-compatible server (mirage.evaluate)
    resources: ResourceSpec = field(default_factory=ResourceSpec)  # what a Ray task for it asks for
    add_bos: bool = False  # every prompt starts with the BOS token


@dataclass(frozen=True)
class FamilySpec:
    """A validated family YAML: the family's name, its models, the scale column and the file it came from."""

    family: str
    models: tuple[ModelSpec, ...]
    scale: str = "params"  # the column that becomes the record's ``scale``
    source: str = ""


# ----------------------------------------------------------------------------- family spec


def load_family(path: str | Path) -> FamilySpec:
    """Read and validate a family YAML (see docs/eval.md); paths are relative to the file."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise MirageInputError("family file does not exist", src)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MirageInputError(f"malformed YAML: {str(exc).splitlines()[0]}", src) from None
    if not isinstance(data, dict):
        raise MirageInputError("expected a mapping with 'family' and 'models'", src)
    unknown = sorted(map(str, set(data) - set(FAMILY_KEYS)))
    if unknown:
        raise MirageInputError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(FAMILY_KEYS)})", src)
    family_resources = parse_resources(data.get("resources"), "family", src)
    family = data.get("family")
    if not isinstance(family, str) or not family.strip():
        raise MirageInputError("'family' must be a non-empty string", src)
    scale = data.get("scale", "params")
    if scale not in SCALE_COLUMNS:
        raise MirageInputError(f"'scale' must be one of {', '.join(SCALE_COLUMNS)}, got {scale!r}", src)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise MirageInputError("'models' must be a non-empty list", src)
    specs, names = [], set()
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            raise MirageInputError(f"models[{i}] must be a mapping", src)
        name = m.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MirageInputError(f"models[{i}] needs a non-empty 'name'", src)
        where = f"model {name!r}"
        if name in names:
            raise MirageInputError(f"{where} appears twice", src)
        names.add(name)
        bad = sorted(set(m) - MODEL_KEYS)
        if bad:
            raise MirageInputError(
                f"{where}: unknown key(s) {', '.join(bad)} (allowed: {', '.join(sorted(MODEL_KEYS))})", src
            )
        add_bos = parse_add_bos(m, where, src)
        server = parse_server(m, where, src, path.parent, add_bos)
        if server is not None:
            ref, is_local = server.model, False
        elif ("path" in m) == ("id" in m):
            raise MirageInputError(f"{where}: give exactly one of 'path' (local checkpoint) or 'id' (hub id)", src)
        elif "path" in m:
            local = Path(str(m["path"])).expanduser()
            local = local if local.is_absolute() else (path.parent / local)
            if not local.exists():
                raise MirageInputError(
                    f"{where}: path {str(m['path'])!r} does not exist (resolved to {local.resolve()})", src
                )
            if not (local / "config.json").is_file():
                raise MirageInputError(
                    f"{where}: {str(m['path'])!r} is not a transformers checkpoint directory (no config.json)", src
                )
            ref, is_local = str(local.resolve()), True
        else:
            ref, is_local = str(m["id"]), False
        revision = m.get("revision")
        if revision is not None and not isinstance(revision, (str, int)):
            raise MirageInputError(f"{where}: 'revision' must be a string", src)
        scales = {}
        for key in SCALE_COLUMNS:
            if key in m:
                value = m[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise MirageInputError(f"{where}: {key!r} must be a positive number, got {value!r}", src)
                scales[key] = float(value)
        if scale != "params" and scale not in scales:
            raise MirageInputError(f"{where}: the family's scale column {scale!r} is missing", src)
        resources = family_resources.merged(parse_resources(m.get("resources"), where, src))
        specs.append(
            ModelSpec(
                name,
                ref,
                None if revision is None else str(revision),
                is_local,
                MappingProxyType(scales),
                server=server,
                resources=resources,
                add_bos=add_bos,
            )
        )
    return FamilySpec(family.strip(), tuple(specs), scale, src)
