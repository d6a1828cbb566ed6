"""Synthetic sample records from a known per-token probability per model.

Used by the tests, the benchmarks and the docs to produce families whose truth is known: each
target token is produced correctly with probability ``p`` independently (the approximation the
paper states), so exact match is about ``p ** L`` while token edit distance is about
``L * (1 - p)``. Give a smooth ``p`` to get a curve that only *looks* sudden under exact match,
or a ``p`` that jumps to get a real jump.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa

from .records import normalize_records

DIGITS = np.array(list("0123456789"))


def synthetic_records(
    p_by_scale: Mapping[float, float],
    *,
    n_samples: int = 200,
    lengths: Sequence[int] = (5,),
    n_choices: int = 4,
    family: str = "synthetic",
    task: str = "synthetic",
    seed: int = 0,
    logprob_noise: float = 0.0,
) -> pa.Table:
    """Records for one family: models at the given scales with per-token probability p.

    Targets are random digit strings with lengths cycling through ``lengths``; each output
    token is right with probability p (else another digit); the teacher-forced log-probability
    of every target token is ``log p`` (plus optional Gaussian noise, clipped below 0). Multiple
    choice: the right option has log-probability ``L log p``, each of the others
    ``L log((1 - p) / (n_choices - 1))``, so its grade is a step at p = 1/n_choices.
    """
    rng = np.random.default_rng(seed)
    lengths = np.resize(np.asarray(lengths, dtype=int), n_samples)
    targets = [rng.choice(DIGITS, size=L) for L in lengths]
    cols: dict[str, list] = {k: [] for k in (
        "family", "model", "scale", "task", "sample_id", "prompt", "target", "output", "target_tokens",
        "output_tokens", "target_logprobs", "choices", "choice_logprobs", "choice_lengths", "correct_choice")}
    for m, (scale, p) in enumerate(sorted(p_by_scale.items())):
        if not 0 < p <= 1:
            raise ValueError(f"p must be in (0, 1], got {p}")
        for i, tgt in enumerate(targets):
            L = len(tgt)
            right = rng.random(L) < p
            wrong = (tgt.astype(int) + rng.integers(1, 10, size=L)) % 10
            out = np.where(right, tgt, wrong.astype(str))
            lp = np.full(L, np.log(p))
            if logprob_noise:
                lp = np.minimum(lp + rng.normal(0, logprob_noise, L), -1e-9)
            correct = int(rng.integers(n_choices))
            other = np.log(max(1 - p, 1e-12) / (n_choices - 1)) * L
            choice_lp = [float(L * np.log(p)) if k == correct else float(other) for k in range(n_choices)]
            choices = ["".join(tgt) if k == correct else "".join(rng.choice(DIGITS, size=L)) for k in range(n_choices)]
            cols["family"].append(family)
            cols["model"].append(f"{family}-m{m}")
            cols["scale"].append(float(scale))
            cols["task"].append(task)
            cols["sample_id"].append(f"{task}-{i}")
            cols["prompt"].append(f"Q{i}:")
            cols["target"].append("".join(tgt))
            cols["output"].append("".join(out))
            cols["target_tokens"].append(list(tgt))
            cols["output_tokens"].append(list(out))
            cols["target_logprobs"].append(lp.tolist())
            cols["choices"].append(choices)
            cols["choice_logprobs"].append(choice_lp)
            cols["choice_lengths"].append([L] * n_choices)
            cols["correct_choice"].append(correct)
    return normalize_records(pa.table(cols), f"synthetic:{family}")


def power_law_p(scales, c: float = 2.0e9, alpha: float = -0.5) -> dict[float, float]:
    """Per-token probability exp(-(N/c)**alpha) of the paper's model at each scale."""
    return {float(n): float(np.exp(-((n / c) ** alpha))) for n in scales}
