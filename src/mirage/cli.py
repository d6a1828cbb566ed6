"""mirage: is an emergent ability real, or an artifact of the metric it was scored with?

Every command is a thin layer over a Python function (named in its help); heavy imports happen
inside the commands so `mirage --help` stays fast.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)


def handle_errors(fn):
    """Turn bad input into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import MirageInputError

        try:
            return fn(*args, **kwargs)
        except MirageInputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)

    return wrapper


# ----------------------------------------------------------------------------- commands
# Each command lives in its own block; add new ones below the last block.

# ----------------------------------------------------------------------------- end of commands


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
