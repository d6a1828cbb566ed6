"""Figures and HTML from results, and what the commands print; no computation.

- :mod:`~mirage.report.png`: the one PNG encoder (Agg backend; ``data:`` URIs);
- :mod:`~mirage.report.html`: self-contained pages and tables;
- :mod:`~mirage.report.figures`: a task's curves, the predicted exact match, target length;
- :mod:`~mirage.report.analysis`, :mod:`~mirage.report.theory`, :mod:`~mirage.report.meta`,
  :mod:`~mirage.report.vision`, :mod:`~mirage.report.story`: each command's figures and page;
- :mod:`~mirage.report.terminal`: the lines each command prints.
"""
