"""Data shipped inside the package (``mirage/data``): real published scaling results of Pythia,
OPT and BLOOM (see ``src/mirage/data/README.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_TABLES = ("pythia_scaling.csv", "opt_bloom_scaling.csv")


def bundled_path(name: str) -> Path:
    """Path of a data file shipped inside the package.

    >>> bundled_path("pythia_scaling.csv").name
    'pythia_scaling.csv'
    """
    return Path(str(resources.files("mirage") / "data" / name))
