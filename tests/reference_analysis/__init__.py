# ruff: noqa: B023
"""The unvectorised, unstreamed analysis as it was before issue 15, kept verbatim as the reference
the fast path is compared with (``tests/test_perf_equivalence.py``, ``benchmarks/analyze_scale.py``).

Copies of ``mirage.analysis.{analyze,curves,emergence,verdicts,predictions,resolution}``,
``mirage.stats.{evidence,intervals}`` and the per-sample functions of ``mirage.metrics`` at commit
a5a509f, with imports pointed at each other: one group, one curve and one model at a time, every
record in memory. Do not "fix" this code: it is the definition the fast path must reproduce.
"""
