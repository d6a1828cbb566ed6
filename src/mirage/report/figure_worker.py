"""A process that draws task figures for :class:`mirage.report.analysis.PendingFigures`.

Started as ``python -m mirage.report.figure_worker`` (a fresh interpreter that never imports the
caller's ``__main__``, so a user's script without a ``__main__`` guard is not run again, as it
would be by multiprocessing's spawn). It reads jobs from stdin and answers each with the PNG:
every message is an 8-byte little-endian length and that many bytes (a pickled
:class:`~mirage.report.analysis.FigureJob` in, PNG bytes out; length 0 when drawing failed, so
the caller draws that figure itself and sees the error). It ends at the end of its input.
"""

from __future__ import annotations

import pickle
import sys
from typing import IO


def read_message(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or None at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    body = stream.read(size)
    return body if len(body) == size else None


def write_message(stream: IO[bytes], body: bytes) -> None:
    """Send one length-prefixed message."""
    stream.write(len(body).to_bytes(8, "little"))
    stream.write(body)
    stream.flush()


def main() -> None:
    """Answer jobs on stdin with PNGs on stdout until stdin ends."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the answers
    from .analysis import render_figure

    while (message := read_message(source)) is not None:
        try:
            png = render_figure(pickle.loads(message))
        except Exception:  # noqa: BLE001 - the caller redraws the figure and reports the error itself
            png = b""
        write_message(sink, png)


if __name__ == "__main__":
    main()
