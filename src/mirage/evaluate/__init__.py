"""Evaluation: running model families and keeping their per-sample records.

* :mod:`mirage.evaluate.run` -- ``mirage eval``: every model of a family on a task, resumably;
* :mod:`mirage.evaluate.backends` -- the ``Backend`` protocol and the in-process transformers backend;
* :mod:`mirage.evaluate.store` -- the record store's layout, locks and crash recovery;
* :mod:`mirage.evaluate.hub` -- hub revisions resolved to commits;
* :mod:`mirage.evaluate.client` -- an HTTP client for OpenAI-compatible servers (retries with
  backoff, bounded concurrency);
* :mod:`mirage.evaluate.journal` -- an append-only log of answered requests, so a killed run
  resumes without sending them again;
* :mod:`mirage.evaluate.openai_backend` -- the ``Backend`` protocol over ``/v1/completions``;
* :mod:`mirage.evaluate.ray_runner` -- ``mirage eval --ray``: one Ray task per (model, task) shard.

Family specs and tasks are inputs (:mod:`mirage.io.family`, :mod:`mirage.io.tasks`).
"""
