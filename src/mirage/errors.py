"""One exception for bad input, so every entry point can turn it into one clear line.

The CLI prints ``error: <message>`` and exits with status 2; the message must name the file
(or option) and the problem, e.g. ``scores.csv: missing column 'value'``.
"""

from __future__ import annotations


class MirageInputError(ValueError):
    """Input that mirage cannot use: malformed files, missing columns, NaN, unknown names."""

    def __init__(self, message: str, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
