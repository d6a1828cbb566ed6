"""An append-only journal of answered server requests, so a killed run does not send them again.

The shard store already keeps finished *chunks*; a chunk of 128 samples is many requests, and a
run killed half-way through one would otherwise send the finished half again. Each answered
request is appended as one JSON line ``{"k": key, "v": value}``, where ``key`` hashes the whole
request body (model, prompt, every sampling field; never the API key, which is not in the body)
and ``value`` is what mirage keeps of the answer. A rerun loads the file and answers those
requests from it.

Robust to being killed: every line is written with one ``write`` on an ``O_APPEND`` descriptor
(so two runs appending at once do not interleave inside a line on a local file system), a torn
last line is skipped when the file is read, and a newline is written first when the file does
not end in one. The journal only ever saves requests: deleting it costs a resend, never a wrong
number, because answers are reused only for byte-identical request bodies.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def request_key(kind: str, body: dict) -> str:
    """A stable hash of what a request asks (``kind`` separates uses of one body)."""
    text = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class RequestJournal:
    """Answers by request key, read from and appended to one JSONL file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._answers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        if self.path.is_file():
            with open(self.path, "rb") as fh:
                for raw in fh:
                    try:
                        entry = json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        continue  # a line torn by a kill
                    if isinstance(entry, dict) and isinstance(entry.get("k"), str) and "v" in entry:
                        self._answers[entry["k"]] = entry["v"]

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> Any | None:
        """The saved answer, or ``None``."""
        return self._answers.get(key)

    def put(self, key: str, value: Any) -> None:
        """Save one answer (thread-safe; one ``write`` per line)."""
        line = (json.dumps({"k": key, "v": value}, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                if os.fstat(self._fd).st_size and not _ends_with_newline(self.path):
                    os.write(self._fd, b"\n")
            os.write(self._fd, line)
            self._answers[key] = value

    def close(self) -> None:
        """Close the file (answers stay readable in memory)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
