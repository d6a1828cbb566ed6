"""mirage: is an emergent ability a property of the models or of the metric?

The public API mirrors the command line: every ``mirage`` command is a thin layer over a
function importable from here or from the module named in its docstring.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import MirageInputError

__all__ = ["MirageInputError", "__version__"]
