"""Realistic score tables for the report tests: many families, a few models each, several tasks.

ObsScaling's emergent-capability table (25 families, 84 models, 7 tasks) is not available offline,
so :func:`many_families_table` builds one of the same shape: per family 3 or 4 models spread over
about two decades of parameters, per task ``acc`` (with ``stderr`` and ``n_samples``) and a
per-token loss metric (``ppl``, with its ``stderr``) of the same outputs. Some tasks have a sharp
accuracy curve over a smooth loss (what the paper calls a mirage), some a smooth rise, some stay
at chance. Seeded: the same arguments give the same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FAMILY_NAMES = (
    "Llama-2",
    "Llama-3",
    "Qwen1.5",
    "Qwen2",
    "Mistral",
    "Mixtral",
    "Falcon",
    "BLOOM",
    "OPT",
    "Pythia",
    "GPT-Neo",
    "GPT-J",
    "MPT",
    "Phi",
    "Gemma",
    "StableLM",
    "Yi",
    "DeepSeek",
    "InternLM",
    "Baichuan",
    "CodeLlama",
    "StarCoder",
    "OLMo",
    "Cerebras-GPT",
    "RedPajama",
)
# (task, chance level of acc, kind of curve)
TASKS = (
    ("word_unscramble", 0.0, "sharp"),
    ("qa_wikidata", 0.0, "smooth"),
    ("arithmetic_3ds", 0.0, "jump"),
    ("persian_qa", 0.0, "flat"),
    ("mmlu", 0.25, "sharp"),
    ("gsm8k", 0.0, "smooth"),
    ("hellaswag", 0.25, "smooth"),
)


def family_name(i: int) -> str:
    """The i-th family's name: real family names first, then numbered ones."""
    return FAMILY_NAMES[i] if i < len(FAMILY_NAMES) else f"family-{i + 1:02d}"


def many_families_table(n_families: int = 25, n_tasks: int = 7, seed: int = 0) -> pd.DataFrame:
    """A long score table: ``family, model, params, task, shots, metric, value, stderr, n_samples``."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_families):
        family = family_name(f)
        n_models = 3 + (f % 2)  # 3 or 4 models, as most published families
        low = 10 ** rng.uniform(8.0, 9.0)
        params = np.geomspace(low, low * 10 ** rng.uniform(1.6, 2.3), n_models)
        shift = rng.normal(0.0, 0.25)  # a family's efficiency: where on the axis its curves sit
        for task, chance, shape in TASKS[:n_tasks]:
            n = int(rng.choice([500, 1000, 2000]))
            for i, p in enumerate(params):
                x = np.log10(p) - 9.5 + shift
                loss = 1.2 * (p * 10**shift / 1e9) ** -0.4  # smooth per-token loss (nats): a power law
                if shape == "sharp":  # exact match over a 4-token answer: exp(-L * CE), sudden-looking
                    acc = chance + (1 - chance) * np.exp(-4 * loss)
                elif shape == "jump":  # a real jump: the loss itself steps down after the second model
                    loss = loss * (0.35 if i >= 2 else 1.0)
                    acc = chance + (1 - chance) * np.exp(-4 * loss)
                elif shape == "smooth":
                    acc = chance + (1 - chance) / (1 + np.exp(-1.3 * x))
                else:
                    acc = chance + 0.004 * i
                acc = float(np.clip(acc + rng.normal(0, 0.004), 0.0, 1.0))
                ppl = float(np.exp(loss) * np.exp(rng.normal(0, 0.01)))
                model = f"{family}-{p / 1e9:.2g}B"
                common = dict(family=family, model=model, params=float(p), task=task, shots=0, n_samples=n)
                rows.append(
                    dict(common, metric="acc", value=acc, stderr=float(np.sqrt(max(acc * (1 - acc), 1e-4) / n)))
                )
                rows.append(dict(common, metric="ppl", value=ppl, stderr=0.01 * ppl))
    return pd.DataFrame(rows)
