"""A process that draws task figures for :class:`mirage.report.figure_pool.PendingFigures`.

Started as ``python -m mirage.report.figure_worker`` (a fresh interpreter that never imports the
caller's ``__main__``, so a user's script without a ``__main__`` guard is not run again, as it
would be by multiprocessing's spawn). It reads jobs from stdin and answers each with the PNG:
every message is an 8-byte little-endian length and that many bytes (a pickled
:class:`~mirage.report.figure_pool.FigureJob` in, PNG bytes out; length 0 when drawing failed, so
the caller draws that figure itself and sees the error). It ends at the end of its input.
"""

from __future__ import annotations

import pickle
import sys

from .figure_pool import read_message, render_figure, write_message


def main() -> None:
    """Answer jobs on stdin with PNGs on stdout until stdin ends."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the answers
    while (message := read_message(source)) is not None:
        try:
            png = render_figure(pickle.loads(message))
        except Exception:  # noqa: BLE001 - the caller redraws the figure and reports the error itself
            png = b""
        write_message(sink, png)


if __name__ == "__main__":
    main()
