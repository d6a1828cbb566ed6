"""A small HTTP client for OpenAI-compatible servers: retries, backoff, bounded concurrency.

Requests are JSON POSTs. A request that fails in a way that may pass (HTTP 429, any 5xx, a
timeout, a refused or dropped connection) is retried up to ``max_retries`` times after an
exponential backoff with jitter (``Retry-After`` is honoured when the server sends it); any
other answer (400, 401, 404, ...) fails at once. ``post_many`` sends at most ``max_concurrency``
requests at a time over one pooled ``httpx.Client`` (thread-safe) and returns answers in order.

Failures become :class:`ServerError` (a :class:`mirage.errors.MirageInputError`, so the CLI shows
one line), naming the server and what it returned. The API key travels only in the
``Authorization`` header; it is never logged or returned.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ..errors import MirageInputError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ServerError(MirageInputError):
    """A server that cannot answer (after retries) or answers with an error."""

    def __init__(self, message: str, server: str, status: int | None = None):
        self.status = status
        super().__init__(message, server)


class CompletionsClient:
    """POST JSON to ``base_url + path`` with retries; ``post_many`` bounds concurrency."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        max_concurrency: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        try:
            import httpx  # optional dependency (mirage[serve]), loaded with the first request
        except ImportError:
            raise MirageInputError(
                "the OpenAI-compatible backend needs httpx: pip install 'mirage[serve]'", "backend: openai"
            ) from None
        self.base_url = base_url.rstrip("/")
        self.name = name or self.base_url
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.max_concurrency = max_concurrency
        self._sleep = sleep
        self._rng = random.Random(0)  # jitter only spreads retries in time; it never changes a result
        self._rng_lock = threading.Lock()
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers=headers,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="mirage-http")
        self.n_sent = 0  # HTTP requests that reached the wire (retries included), for tests and benchmarks
        self._count_lock = threading.Lock()

    def close(self) -> None:
        """Release the connection pool and worker threads."""
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> "CompletionsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def get(self, path: str) -> Any:
        """GET with the same retries (used for ``/models``)."""
        return self._request("GET", path, None)

    def post(self, path: str, body: dict) -> dict:
        """POST one JSON body; the parsed JSON answer."""
        return self._request("POST", path, body)

    def post_many(self, path: str, bodies: Sequence[dict]) -> list[dict]:
        """POST every body, at most ``max_concurrency`` at a time; answers in input order. The
        first failure is raised once every request in flight has ended."""
        if len(bodies) <= 1:
            return [self.post(path, b) for b in bodies]
        return list(self._pool.map(lambda b: self.post(path, b), bodies))

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on the client's threads (at most ``max_concurrency`` at once),
        results in order; for callers that post and then record each answer as it arrives."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        with self._rng_lock:
            jitter = 0.5 + self._rng.random() / 2
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * jitter

    def _request(self, method: str, path: str, body: dict | None) -> Any:
        httpx = self._httpx
        url = self.base_url + path
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                with self._count_lock:
                    self.n_sent += 1
                if body is None:
                    resp = self._http.request(method, url)
                else:
                    resp = self._http.request(method, url, content=json.dumps(body).encode())
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = (
                    f"connection failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})"
                )
            else:
                if resp.status_code < 400:
                    try:
                        return resp.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        raise ServerError(
                            f"{path} answered HTTP {resp.status_code} with a body that is not JSON: "
                            f"{_snippet(resp.text)}",
                            self.name,
                            resp.status_code,
                        ) from None
                message = f"HTTP {resp.status_code}: {_error_text(resp)}"
                if resp.status_code not in RETRY_STATUS:
                    raise ServerError(f"{path} answered {message}", self.name, resp.status_code)
                last, retry_after = message, resp.headers.get("Retry-After")
            if attempt < self.max_retries:
                self._sleep(self._backoff(attempt, retry_after))
        tries = self.max_retries + 1
        raise ServerError(f"{path} failed {tries} time{'s' if tries > 1 else ''}; last: {last}", self.name)


def _error_text(resp: Any) -> str:
    """The server's own error message when it sends OpenAI-style JSON, else the body's start."""
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return _snippet(resp.text)
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict) and "message" in err:
            return _snippet(str(err["message"]))
        return _snippet(json.dumps(err) if not isinstance(err, str) else err)
    return _snippet(json.dumps(data))


def _snippet(text: str, limit: int = 300) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[:limit] + "..."
