"""Readers for the files other evaluation tools write, turned into mirage's sample records.

- :mod:`mirage.io.lm_eval_samples`: lm-evaluation-harness 0.4.x ``samples_<task>_<date>.jsonl``
  (``--log_samples``), with the ``results_<date>.json`` beside them;
- :mod:`mirage.io.inspect_logs`: Inspect ``.eval`` and ``.json`` logs (optional extra
  ``mirage[inspect]``);
- :mod:`mirage.io.bigbench_logs`: BIG-bench ``full-log_*.json`` (the queries of a run);
- :mod:`mirage.io.models`: what every reader needs about a model that its log may not say:
  its scale (``--scale-from``) and its tokenizer (``--tokenizer``).

:func:`mirage.readers.read_inputs` recognises each by content and calls these.
"""
