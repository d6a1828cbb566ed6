"""Analyses: pure functions from schema tables to results (no files, no figures).

- :mod:`~mirage.analysis.curves`: records and score tables -> curves with intervals;
- :mod:`~mirage.analysis.emergence`: the emergence table;
- :mod:`~mirage.analysis.verdicts`: the verdict rule (tests in :mod:`mirage.stats.evidence`);
- :mod:`~mirage.analysis.predictions`: exact match predicted from the smooth loss; target lengths;
- :mod:`~mirage.analysis.resolution`: better statistics;
- :mod:`~mirage.analysis.analyze`: ``mirage analyze`` (:func:`~mirage.analysis.analyze.run_analysis`);
- :mod:`~mirage.analysis.theory`: ``mirage theory``; :mod:`~mirage.analysis.meta`: ``mirage meta``;
- :mod:`~mirage.analysis.story`: the tables of the demo's three-predictions page.
"""
