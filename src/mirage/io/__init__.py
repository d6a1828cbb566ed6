"""Every file mirage touches: what it reads and what it writes.

Reading (each input recognised by content; one line naming the file for every problem):

- :mod:`~mirage.io.inputs`: :func:`~mirage.io.inputs.read_inputs`, the entry point of
  ``analyze`` and ``meta`` (detection, filters, directory scans);
- :mod:`~mirage.io.tables`: the one reader of JSON, JSONL, CSV and Parquet, with error mapping;
- :mod:`~mirage.io.scores`: long score tables; :mod:`~mirage.io.records`: sample record files;
- :mod:`~mirage.io.lm_eval_results`, :mod:`~mirage.io.lm_eval_samples`: lm-evaluation-harness
  results and 0.4.x sample logs; :mod:`~mirage.io.inspect_logs`: Inspect logs (``mirage[inspect]``);
  :mod:`~mirage.io.bigbench_results`, :mod:`~mirage.io.bigbench_logs`: BIG-bench scores and full
  logs; :mod:`~mirage.io.models`: ``--scale-from`` and ``--tokenizer``;
- :mod:`~mirage.io.family`: family YAML files; :mod:`~mirage.io.tasks`: the tasks ``mirage eval``
  runs (arithmetic generator, BIG-bench ``task.json``, JSONL); :mod:`~mirage.io.bundled`: the
  real published tables shipped in the package.

Writing: :mod:`~mirage.io.files` (atomic files and whole-directory swaps, the one slug helper for
file names) and :mod:`~mirage.io.outputs` (each command's writer; file names from the table specs).
"""
