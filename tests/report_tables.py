"""Realistic score tables for the report tests: many families, a few models each, several tasks
(:func:`mirage.synthetic.many_families_table`; ObsScaling's table is not available offline)."""

from __future__ import annotations

from mirage.synthetic import family_name, many_families_table

__all__ = ["family_name", "many_families_table"]
