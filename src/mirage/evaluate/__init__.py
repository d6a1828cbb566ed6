"""Evaluation: running model families and keeping their per-sample records."""
