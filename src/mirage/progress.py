"""Progress of long work, always on stderr: a bar when stderr is a terminal, plain lines otherwise.

A terminal gets a live bar (rich, redrawn in place). A file or a pipe gets one line when a step
starts, one at most every :data:`LINE_INTERVAL` seconds while it runs, and one when it ends, as
lm-eval and Inspect do: a log of ``mirage demo 2> err`` holds lines, not carriage returns. Nothing
is ever written to stdout, which belongs to a command's result (``--json``).

>>> import io
>>> err = io.StringIO()
>>> bar = progress_bar(3, "figures", unit="figure", stream=err)
>>> for _ in range(3):
...     bar.update()
>>> bar.close()
>>> print(err.getvalue().strip())
figures: 0/3 figures
figures: 3/3 figures, done in 0.0 s
>>> list(progress_iter([1, 2], "quiet", enabled=False))
[1, 2]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
LINE_INTERVAL = 10.0  # seconds between two plain progress lines of one step


class ProgressBar(Protocol):
    """What long work reports to: steps done, a short status, the end."""

    def update(self, n: int = 1) -> None:
        """``n`` more steps are done."""

    def set_postfix_str(self, text: str) -> None:
        """A short status shown beside the count (a loss, a model name)."""

    def close(self) -> None:
        """The work is over (or abandoned)."""


class _Silent:
    """Progress nobody sees (``--quiet``, or a caller that asked for none)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """Plain lines on a stream that is not a terminal: start, every ``interval`` seconds, end."""

    def __init__(self, total: int | None, description: str, unit: str, initial: int, stream: IO[str], interval: float):
        self.total, self.description, self.unit, self.stream, self.interval = total, description, unit, stream, interval
        self.done = initial
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self._line()

    def _units(self) -> str:
        if self.total is None:
            return f"{self.done} {self.unit}s"
        return f"{self.done}/{self.total} {self.unit}s"

    def _line(self, suffix: str = "") -> None:
        post = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.description}: {self._units()}{post}{suffix}", file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval and (self.total is None or self.done < self.total):
            self.last = now
            self._line()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._line(f", done in {time.monotonic() - self.start:.1f} s")


class _Bar:
    """A live bar on a terminal (rich, drawn on stderr)."""

    def __init__(self, total: int | None, description: str, unit: str, initial: int, stream: IO[str]):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit + "s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[postfix]}"),
            console=Console(file=stream),
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, completed=initial, postfix="")
        self.progress.start()

    def update(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def set_postfix_str(self, text: str) -> None:
        self.progress.update(self.task, postfix=text)

    def close(self) -> None:
        self.progress.stop()


class _Managed:
    """A :class:`ProgressBar` that is also a context manager (closed on exit)."""

    def __init__(self, bar: ProgressBar):
        self.bar = bar

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> _Managed:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (bars) rather than a file or pipe (lines)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(
    total: int | None,
    description: str,
    *,
    unit: str = "step",
    initial: int = 0,
    enabled: bool = True,
    stream: IO[str] | None = None,
    interval: float = LINE_INTERVAL,
) -> _Managed:
    """Report progress of ``total`` steps on ``stream`` (default stderr): a bar on a terminal,
    plain lines otherwise, nothing when not ``enabled``."""
    out = sys.stderr if stream is None else stream
    bar: ProgressBar
    if not enabled:
        bar = _Silent()
    elif is_terminal(out):
        bar = _Bar(total, description, unit, initial, out)
    else:
        bar = _Lines(total, description, unit, initial, out, interval)
    return _Managed(bar)


def progress_iter(
    items: Iterable[T],
    description: str,
    *,
    total: int | None = None,
    unit: str = "step",
    enabled: bool = True,
    stream: IO[str] | None = None,
) -> Iterator[T]:
    """Iterate over ``items``, reporting each one done (see :func:`progress_bar`)."""
    if not enabled:
        yield from items
        return
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with progress_bar(total, description, unit=unit, stream=stream) as bar:
        for item in items:
            yield item
            bar.update()
