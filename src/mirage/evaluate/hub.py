"""Hugging Face hub models: pin every ``id:`` + ``revision:`` to a commit before any model runs.

A branch (``main``, or no revision at all) or a tag names different weights over time, so the
revision string cannot identify a shard's numbers. :func:`resolve_commit` asks huggingface_hub's
own ``resolve_revision`` for the commit (from the ``refs/`` of the local cache when offline, as
in the tests and on machines without network; from the hub otherwise, with the cache as
fallback) and, offline, checks that the commit's snapshot is in the cache. The commit then goes
into the shard's configuration hash and is what the model is loaded at, so a moved branch
recomputes its shards and a revision that cannot be resolved fails before any shard is written.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MirageInputError


def hub_offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants  # optional dependency (mirage[eval])

    return bool(constants.HF_HUB_OFFLINE)


def resolve_commit(
    repo_id: str,
    revision: str | None,
    *,
    where: str,
    source: str,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
) -> str:
    """The commit hash ``revision`` of model ``repo_id`` points to now, or a
    :class:`MirageInputError` naming ``where`` (the model), the revision and why."""
    from huggingface_hub import resolve_revision, try_to_load_from_cache  # optional dependency (mirage[eval])
    from huggingface_hub.errors import HfHubHTTPError, RevisionResolutionError

    offline = hub_offline() if offline is None else offline
    shown = revision or "main"
    mode = "offline, from the local Hugging Face cache" if offline else "on the Hugging Face hub or in the local cache"
    try:
        resolved = resolve_revision(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=offline)
    except RevisionResolutionError:
        raise MirageInputError(
            f"{where}: revision {shown!r} of {repo_id!r} cannot be resolved to a commit {mode} "
            "(download it first, e.g. `hf download`, or give a revision that is cached)",
            source,
        ) from None
    except (HfHubHTTPError, ValueError, OSError) as exc:  # not found on the hub, bad id, no access
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MirageInputError(
            f"{where}: revision {shown!r} of {repo_id!r} cannot be resolved: {message}", source
        ) from None
    commit = str(resolved.resolved)
    if offline and not isinstance(
        try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=commit), str
    ):
        raise MirageInputError(
            f"{where}: revision {shown!r} of {repo_id!r} resolves to commit {commit[:12]}, whose "
            "files are not in the local Hugging Face cache (no config.json)",
            source,
        )
    return commit
