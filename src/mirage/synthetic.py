"""Synthetic sample records from a known truth, and score tables of many families.

Used by the tests, the benchmarks and the docs to produce families whose truth is known.
:func:`many_families_table` is a long score table of the shape of a published multi-family table
(25 families of 3-4 models, 7 tasks), for the report's tests and benchmark.

:func:`synthetic_records` is the simple generator: each target token is produced correctly with
probability ``p`` independently (the approximation the paper states), so exact match is about
``p ** L`` while token edit distance is about ``L * (1 - p)``.

:func:`known_truth_records` draws whole families from one of :data:`TRUTHS`, with item and token
heterogeneity, teacher-forced log-probabilities that are consistent with the greedy outputs
(every output token is right with the probability the model gives the target token), and multiple
choice with multi-token options. It is what ``benchmarks/verdict_grid.py`` and the verdict tests
use to check that mirage's verdicts recover the truth:

``smooth``
    per-token loss ``CE(N) = (N / c) ** alpha``, outputs right with probability ``exp(-CE)``:
    exact match only *looks* sudden (the paper's central case). Truth: explained by metric.
``smooth_mc``
    the same law for multiple choice: the correct option scores ``L log p``, each of the K - 1
    others ``L log((1 - p) / (K - 1))`` (plus item noise); options of 1-8 tokens.
``jump``
    the per-token loss itself drops by a factor between two neighbouring models.
    Truth: not explained by metric choice.
``no_emergence``
    single-token targets well above the floor from the smallest model on: nothing looks sudden.
    Truth: no apparent emergence.
``threshold``
    the loss is a smooth power law, but outputs stay at chance (a random digit per token) until the
    per-token probability crosses a level, and only then improve (Du et al. 2024). Truth: not
    explained by metric choice (the jump is in the model's outputs, not in the metric).
``threshold_mc``
    the same for multiple choice: the option margins stay at chance (wrong options score like the
    correct one) until the loss crosses a level. Truth: not explained by metric choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema.records import RECORD_COLUMNS, normalize_records
from .schema.until_pass import UNTIL_PASS_COLUMNS, UNTIL_PASS_FIELDS
from .schema.vocab import Verdict

DIGITS = np.array(list("0123456789"))
TRUTHS = ("smooth", "smooth_mc", "jump", "no_emergence", "threshold", "threshold_mc")
# what each truth should be called (mirage.schema.vocab.Verdict)
EXPECTED_VERDICT = {
    "smooth": Verdict.EXPLAINED.value,
    "smooth_mc": Verdict.EXPLAINED.value,
    "jump": Verdict.NOT_EXPLAINED.value,
    "no_emergence": Verdict.NONE.value,
    "threshold": Verdict.NOT_EXPLAINED.value,
    "threshold_mc": Verdict.NOT_EXPLAINED.value,
}


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
    until_pass: int | None = None,
) -> pa.Table:
    """Records for one family: models at the given scales with per-token probability p.

    Targets are random digit strings with lengths cycling through ``lengths``; each output
    token is right with probability p (else another digit); the teacher-forced log-probability
    of every target token is ``log p`` (plus optional Gaussian noise, clipped below 0). Multiple
    choice: the right option has log-probability ``L log p``, each of the others
    ``L log((1 - p) / (n_choices - 1))``, so its grade is a step at p = 1/n_choices.

    With ``until_pass`` = K the records also hold the attempts of ``mirage eval --until-pass K``
    (:mod:`mirage.schema.until_pass`): each sample is the target with probability ``p ** L``, so the
    first pass is geometric; the kept outputs are drawn token by token as the greedy one is, and
    ``target_stop_logprob`` is the sum of the target's log-probabilities (the stop is certain). They
    come from a random stream of their own: the other columns are the same with or without them.
    """
    rng = np.random.default_rng(seed)
    sampling = np.random.default_rng([seed, 1])
    attempts: dict[str, list[Any]] = {name: [] for name in UNTIL_PASS_COLUMNS}
    cycled = np.resize(np.asarray(lengths, dtype=int), n_samples)
    targets = [rng.choice(DIGITS, size=L) for L in cycled]
    cols: dict[str, list] = {k: [] for k in RECORD_COLUMNS}
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
            if until_pass is not None:
                for name, value in _sampled_until_pass(sampling, tgt, p, until_pass, seed, float(lp.sum())).items():
                    attempts[name].append(value)
    table = pa.table(cols)
    if until_pass is not None:
        for f in UNTIL_PASS_FIELDS:
            table = table.append_column(f, pa.array(attempts[f.name], type=f.type))
    return normalize_records(table, f"synthetic:{family}")


def _sampled_until_pass(
    rng: np.random.Generator, target: np.ndarray, p: float, limit: int, seed: int, logprob: float, keep: int = 8
) -> dict[str, Any]:
    """One item sampled until its first pass or ``limit`` samples, each token right with probability p."""
    failures = int(rng.geometric(p ** len(target))) - 1
    first = failures if failures < limit else None
    n = first + 1 if first is not None else limit
    kept = []
    for j in range(min(n, keep)):
        if j == first:
            kept.append("".join(target))
            continue
        for _ in range(100):  # a failed sample: drawn until it differs from the target
            wrong = np.where(rng.random(len(target)) < p, target, ((target.astype(int) + 1) % 10).astype(str))
            if (wrong != target).any():
                break
        else:
            wrong = ((target.astype(int) + 1) % 10).astype(str)
        kept.append("".join(wrong))
    return {
        "until_pass": limit,
        "sampling_temperature": 1.0,
        "sampling_seed": seed,
        "attempts": n,
        "passed": first is not None,
        "first_pass": first,
        "sampled_outputs": kept,
        "target_stop_logprob": min(0.0, logprob),
    }


def power_law_p(scales: Iterable[float], c: float = 2.0e9, alpha: float = -0.5) -> dict[float, float]:
    """Per-token probability exp(-(N/c)**alpha) of the paper's model at each scale."""
    return {float(n): float(np.exp(-((n / c) ** alpha))) for n in scales}


# ----------------------------------------------------------------------------- known truths


@dataclass(frozen=True)
class TruthSpec:
    """One family drawn from a known truth (see the module docstring for each ``truth``).

    ``top_p`` is the per-token probability of the largest model and places the law on the scale
    axis (``c`` follows from it); ``lengths`` are the target (or option) lengths the items cycle
    through; ``item_sd`` and ``token_sd`` spread the per-token loss over items and tokens
    (log-normal factors of mean 1, so the model's mean per-token loss is exactly ``CE(N)``);
    ``jump_factor`` is how much the per-token loss drops at the jump (``jump`` only);
    ``threshold_p`` is the per-token probability at which outputs or margins leave chance
    (``threshold`` truths; default: the probability at the middle model). ``scales_given`` and
    ``c`` pin the family to given scales and the law to ``(N / c) ** alpha`` (e.g. the paper's
    Figure 2), overriding ``n_models``, ``decades`` and ``top_p``.
    """

    truth: str
    n_models: int = 8
    decades: float = 3.0
    n_samples: int = 1000
    lengths: tuple[int, ...] = (4,)
    n_choices: int = 4
    alpha: float = -0.5
    top_p: float = 0.95
    n_min: float = 1.0e7
    item_sd: float = 0.3
    token_sd: float = 0.3
    option_sd: float = 0.5
    jump_factor: float = 4.0
    threshold_p: float | None = None
    family: str | None = None
    task: str = "synthetic"
    seed: int = 0
    scales_given: tuple[float, ...] | None = None
    c: float | None = None

    def __post_init__(self) -> None:
        if self.truth not in TRUTHS:
            raise ValueError(f"truth must be one of {TRUTHS}, got {self.truth!r}")
        if self.n_models < 2 or self.n_samples < 1 or self.decades <= 0:
            raise ValueError("needs n_models >= 2, n_samples >= 1 and decades > 0")
        if not (0 < self.top_p < 1) or self.alpha >= 0:
            raise ValueError("needs 0 < top_p < 1 and alpha < 0")
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError("lengths must be whole numbers >= 1")

    @property
    def scales(self) -> np.ndarray:
        """The family's scales: the given ones sorted, else log-spaced over the decades."""
        if self.scales_given is not None:
            return np.sort(np.asarray(self.scales_given, dtype=float))
        return np.geomspace(self.n_min, self.n_min * 10.0**self.decades, self.n_models)

    def cross_entropy(self) -> np.ndarray:
        """Each model's mean per-token loss: the power law ``(N / c) ** alpha`` (``c`` given, or
        placed so that the largest model has per-token probability ``top_p``), with the jump if any."""
        x = self.scales
        if self.c is not None:
            ce = (x / self.c) ** self.alpha
        else:
            ce = -np.log(self.top_p) * (x / x[-1]) ** self.alpha
        if self.truth == "jump":
            k = self.n_models // 2  # the jump sits between models k-1 and k
            ce = np.where(np.arange(self.n_models) < k, ce * self.jump_factor, ce)
        if self.truth == "no_emergence":
            # single-token answers from well above the floor: p from ~0.4 to top_p, gently
            p_low = 0.4
            frac = np.log(x / x[0]) / np.log(x[-1] / x[0])
            ce = -np.log(p_low + (self.top_p - p_low) * frac**0.8)
        return ce


def _lognormal_unit_mean(rng: np.random.Generator, sd: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Log-normal factors with mean exactly 1 in expectation: exp(N(-sd^2/2, sd))."""
    if sd <= 0:
        return np.ones(size)
    return np.exp(rng.normal(-0.5 * sd * sd, sd, size=size))


def known_truth_records(spec: TruthSpec) -> pa.Table:
    """Sample records of one family drawn from ``spec`` (seeded; same spec, same records).

    Generation truths fill ``output``/``output_tokens``/``target_logprobs``; multiple-choice
    truths fill ``choices``/``choice_logprobs``/``choice_lengths``/``correct_choice``. Every
    model sees the same items; item difficulty is shared across models, as in a real test set.
    """
    rng = np.random.default_rng(spec.seed)
    family = spec.family or spec.truth
    n, K = spec.n_samples, len(spec.scales)
    scales = spec.scales
    ce_model = spec.cross_entropy()
    lengths = np.resize(np.asarray(spec.lengths, dtype=np.int64), n)
    rng.shuffle(lengths)
    item = _lognormal_unit_mean(rng, spec.item_sd, n)  # item difficulty, shared by all models
    mc = spec.truth in ("smooth_mc", "threshold_mc")
    gen_truth = spec.truth in ("smooth", "jump", "no_emergence", "threshold")
    if spec.truth == "no_emergence":
        lengths = np.ones(n, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n_tok = int(offsets[-1])
    token_item = np.repeat(np.arange(n), lengths)
    token = _lognormal_unit_mean(rng, spec.token_sd, n_tok)
    target_digits = rng.integers(0, 10, size=n_tok)
    threshold_p = spec.threshold_p
    if threshold_p is None:
        threshold_p = float(np.exp(-ce_model[K // 2]))
    correct_choice = rng.integers(0, spec.n_choices, size=n)
    out_frames = []
    for m in range(K):
        ce_tok = ce_model[m] * item[token_item] * token  # per-token loss of each target token
        logp = -ce_tok
        p_tok = np.exp(logp)
        if spec.truth == "threshold":
            # outputs at chance (1 in 10 digits) until p crosses the level, then rising to p
            # (a model whose probability is below chance is not lifted to it)
            stuck = min(0.1, threshold_p)
            ramp = np.clip((p_tok - threshold_p) / (1.0 - threshold_p), 0.0, 1.0)
            q_tok = np.where(p_tok < threshold_p, np.minimum(p_tok, stuck), stuck + ramp * (1.0 - stuck))
        else:
            q_tok = p_tok
        base = {
            "family": np.full(n, family, dtype=object),
            "model": np.full(n, f"{family}-m{m:02d}", dtype=object),
            "scale": np.full(n, float(scales[m])),
            "task": np.full(n, spec.task, dtype=object),
            "sample_id": np.array([f"{spec.task}-{i}" for i in range(n)], dtype=object),
            "prompt": np.array([f"Q{i}:" for i in range(n)], dtype=object),
        }
        targets_tok = DIGITS[target_digits]
        target_str = np.array(["".join(targets_tok[offsets[i] : offsets[i + 1]]) for i in range(n)], dtype=object)
        base["target"] = target_str
        cols: dict[str, pa.Array] = {k: pa.array(v) for k, v in base.items()}
        tok_offsets = pa.array(offsets.astype(np.int32))
        cols["target_tokens"] = pa.ListArray.from_arrays(tok_offsets, pa.array(targets_tok))
        if gen_truth:
            right = rng.random(n_tok) < q_tok
            wrong = (target_digits + rng.integers(1, 10, size=n_tok)) % 10
            out_digits = np.where(right, target_digits, wrong)
            out_tok = DIGITS[out_digits]
            cols["output"] = pa.array(["".join(out_tok[offsets[i] : offsets[i + 1]]) for i in range(n)])
            cols["output_tokens"] = pa.ListArray.from_arrays(tok_offsets, pa.array(out_tok))
            cols["target_logprobs"] = pa.ListArray.from_arrays(tok_offsets, pa.array(logp))
        if mc:
            Kc = spec.n_choices
            L = lengths.astype(float)
            # every option gets its own noisy per-token probability around the item's (noise on the
            # logit scale, so a model at chance has margins of one spread whatever its loss): the
            # correct option's tokens have probability p, a wrong option's tokens share the rest
            logit = -ce_model[m] * item - np.log(-np.expm1(-ce_model[m] * item))
            z = logit[:, None] + spec.option_sd * rng.standard_normal((n, Kc))
            right_tok = -np.logaddexp(0.0, -z)  # log sigmoid(z)
            wrong_tok = -np.logaddexp(0.0, z) - np.log(Kc - 1)  # log((1 - sigmoid(z)) / (K - 1))
            if spec.truth == "threshold_mc":
                # margins at chance (wrong options score like the right one) until p crosses the level
                p_opt = np.exp(right_tok)
                ramp = np.clip((p_opt - threshold_p) / (1.0 - threshold_p), 0.0, 1.0)
                wrong_tok = right_tok + ramp * (wrong_tok - right_tok)
            is_right = np.arange(Kc)[None, :] == correct_choice[:, None]
            scores = L[:, None] * np.where(is_right, right_tok, wrong_tok)
            choice_offsets = pa.array((np.arange(n + 1) * Kc).astype(np.int32))
            cols["choice_logprobs"] = pa.ListArray.from_arrays(choice_offsets, pa.array(scores.ravel()))
            cols["choice_lengths"] = pa.ListArray.from_arrays(choice_offsets, pa.array(np.repeat(lengths, Kc)))
            choice_text = np.array([f"opt{k}" for k in range(Kc)], dtype=object)
            cols["choices"] = pa.ListArray.from_arrays(choice_offsets, pa.array(np.tile(choice_text, n)))
            cols["correct_choice"] = pa.array(correct_choice.astype(np.int64))
        out_frames.append(pa.table(cols))
    table = pa.concat_tables(out_frames, promote_options="permissive")
    return normalize_records(table, f"synthetic:{family}")


def grid_specs(
    truths: Sequence[str] = TRUTHS,
    n_models: Sequence[int] = (4, 6, 8, 12, 16),
    decades: Sequence[float] = (2, 3, 4, 5),
    n_samples: Sequence[int] = (200, 1000, 5000),
    repeats: int = 2,
    seed: int = 0,
) -> list[TruthSpec]:
    """The known-truth grid of ``benchmarks/verdict_grid.py``: every truth crossed with model
    counts, decades and sample sizes, ``repeats`` families per cell.

    Per family (seeded): a target length from 1-8 (or a mix of 1-8), an exponent alpha from
    -0.7 to -0.3, and a law placed so that the largest model's exact match (or per-token
    probability, for multiple choice) lies in a range where the curve can move inside the family;
    a jump factor of 3-10 between two neighbouring models near the middle (``jump``); a threshold
    at the probability of a model in the middle half (``threshold`` truths).
    """
    rng = np.random.default_rng(seed)
    specs = []
    for truth in truths:
        for k in n_models:
            for dec in decades:
                for n in n_samples:
                    for r in range(repeats):
                        mixed = rng.random() < 0.25
                        L = int(rng.integers(1, 9))
                        lengths = tuple(range(1, 9)) if mixed else (L,)
                        alpha = float(rng.uniform(-0.7, -0.3))
                        mc = truth.endswith("_mc")
                        if mc:
                            top_p = float(rng.uniform(0.4, 0.9))
                        elif truth == "no_emergence":
                            top_p = float(rng.uniform(0.8, 0.97))
                        else:
                            mean_len = float(np.mean(lengths))
                            top_p = float(rng.uniform(0.3, 0.95) ** (1.0 / mean_len))
                        spec = TruthSpec(
                            truth,
                            n_models=int(k),
                            decades=float(dec),
                            n_samples=int(n),
                            lengths=lengths,
                            alpha=alpha,
                            top_p=min(top_p, 0.995),
                            jump_factor=float(rng.uniform(3, 10)),
                            seed=int(rng.integers(0, 2**31 - 1)),
                            family=f"{truth}-k{k}-d{dec:g}-n{n}-r{r}",
                        )
                        if truth.startswith("threshold"):
                            spec = _with_threshold(spec, float(rng.random()))
                        specs.append(spec)
    return specs


def _with_threshold(spec: TruthSpec, u: float) -> TruthSpec:
    """Place the threshold at the probability of a model in the middle half of the family with at
    least two models past it, and above chance where the family allows (0.3 for generation,
    0.35 for multiple choice): a threshold below chance leaves outputs that follow their
    probabilities, i.e. no threshold at all, and one crossed only by the largest model leaves a
    single point to see it by (a limit of any test, stated in docs/verdicts.md)."""
    p = np.exp(-spec.cross_entropy())
    lowest = 0.35 if spec.truth.endswith("_mc") else 0.3
    k = len(p)
    idx = np.arange(k // 4, max(k // 4 + 1, (3 * k + 3) // 4))
    idx = idx[idx <= k - 3] if (idx <= k - 3).any() else idx[:1]
    good = idx[(p[idx] >= lowest) & (p[idx] < 0.95)]
    pool = good if len(good) else idx[-1:]
    j = int(pool[int(u * len(pool)) % len(pool)])
    return replace(spec, threshold_p=float(max(p[j], min(lowest, p[min(j + 1, k - 1)] * 0.999))))


# ----------------------------------------------------------------------------- score tables of many families

SCORE_FAMILY_NAMES = (
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
SCORE_TASKS = (
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
    return SCORE_FAMILY_NAMES[i] if i < len(SCORE_FAMILY_NAMES) else f"family-{i + 1:02d}"


def many_families_table(n_families: int = 25, n_tasks: int = 7, seed: int = 0) -> pd.DataFrame:
    """A long score table of the shape of a published multi-family table (ObsScaling's
    emergent-capability results: 25 families, 84 models, 7 tasks): per family 3 or 4 models over
    about two decades of parameters; per task ``acc`` (with ``stderr`` and ``n_samples``) and a
    per-token loss metric (``ppl``, with its ``stderr``) of the same outputs. Tasks have a sharp
    accuracy over a smooth power-law loss (a mirage), a real jump (the loss itself steps down), a
    smooth rise, or stay at chance. Columns: ``family, model, params, task, shots, metric, value,
    stderr, n_samples``. Seeded: the same arguments give the same table.

    >>> table = many_families_table(25)
    >>> table["family"].nunique(), table["model"].nunique(), table["task"].nunique()
    (25, 87, 7)
    """
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_families):
        family = family_name(f)
        n_models = 3 + (f % 2)  # 3 or 4 models, as most published families
        low = 10 ** rng.uniform(8.0, 9.0)
        params = np.geomspace(low, low * 10 ** rng.uniform(1.6, 2.3), n_models)
        shift = rng.normal(0.0, 0.25)  # a family's efficiency: where on the axis its curves sit
        for task, chance, shape in SCORE_TASKS[:n_tasks]:
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
