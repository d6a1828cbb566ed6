"""Metric names of score tables and of the theory, in the metric registry.

lm-evaluation-harness and BIG-bench spellings (and mirage's own record metrics, registered in
:mod:`mirage.metrics.per_sample`) are recognised in every score table; names only BIG-bench
results carry get their kind in BIG-bench rows only (:func:`~mirage.metrics.registry.bigbench_kind`);
the theory's curves (``cross_entropy``, ``p_token``, ``accuracy`` = ``p ** L``) only in
``mirage theory``. The per-token probability and loss scales of perplexity-like metrics are here
too: ``1/ppl`` and ``log ppl``.
"""

from __future__ import annotations

import numpy as np

from .registry import Context, Metric, PerTokenLoss, register_metric


def _negated(v: np.ndarray) -> np.ndarray:
    return -v


def _ones(v: np.ndarray) -> np.ndarray:
    return np.ones_like(v)


def _reciprocal(v: np.ndarray) -> np.ndarray:
    return 1.0 / v


def _bits_to_probability(v: np.ndarray) -> np.ndarray:
    return np.exp2(-v)


def _bits_to_nats(v: np.ndarray) -> np.ndarray:
    return v * np.log(2.0)


def _ln2(v: np.ndarray) -> np.ndarray:
    return np.full_like(v, np.log(2.0))


def _perplexity_loss(rank: int) -> PerTokenLoss:
    return PerTokenLoss(np.log, _reciprocal, rank)


def _loglik_loss(rank: int) -> PerTokenLoss:
    return PerTokenLoss(_negated, _ones, rank)


# name, kind, higher_is_better, extra facts (loss ranks continue those of the record metrics:
# target_mean_logprob 0, choice_token_loss 1, correct_choice_mean_logprob 2, target_logprob 11)
_SCORE_NAMES: tuple[tuple[str, str, bool, dict], ...] = (
    # discontinuous: a step per sample, averaged
    ("acc", "discontinuous", True, dict(compounds=True)),
    ("acc_norm", "discontinuous", True, {}),
    ("acc_mutual_info", "discontinuous", True, {}),
    ("exact_str_match", "discontinuous", True, dict(zero_floor=True, compounds=True)),
    ("em", "discontinuous", True, dict(zero_floor=True, compounds=True)),
    ("mc1", "discontinuous", True, {}),
    ("mc2", "linear", True, {}),
    ("f1", "discontinuous", True, {}),
    ("mcc", "discontinuous", True, {}),
    ("pct_stereotype", "discontinuous", False, {}),
    ("contains", "discontinuous", True, dict(zero_floor=True)),
    ("numeric_match_with_0_1_relative_error", "discontinuous", True, dict(zero_floor=True)),
    ("case_insensitive_str_match", "discontinuous", True, dict(zero_floor=True, compounds=True)),
    # linear / continuous
    ("ppl", "linear", False, dict(probability_scale=_reciprocal, per_token_loss=_perplexity_loss(3))),
    ("perplexity", "linear", False, dict(probability_scale=_reciprocal, per_token_loss=_perplexity_loss(4))),
    ("word_perplexity", "linear", False, dict(probability_scale=_reciprocal, per_token_loss=_perplexity_loss(5))),
    ("byte_perplexity", "linear", False, dict(probability_scale=_reciprocal, per_token_loss=_perplexity_loss(6))),
    (
        "bits_per_byte",
        "linear",
        False,
        dict(probability_scale=_bits_to_probability, per_token_loss=PerTokenLoss(_bits_to_nats, _ln2, 7)),
    ),
    ("log_likelihood", "linear", True, dict(per_token_loss=_loglik_loss(8))),
    ("loglikelihood", "linear", True, dict(per_token_loss=_loglik_loss(9))),
    ("log-likelihood", "linear", True, dict(per_token_loss=_loglik_loss(10))),
    ("likelihood_difference", "linear", False, {}),
    ("multiple_choice_brier_score", "linear", False, {}),
    ("expected_calibration_error", "linear", False, {}),
    ("calibration_multiple_choice_brier_score", "linear", False, {}),
    ("bleu", "linear", True, {}),
    ("bleurt", "linear", True, {}),
    ("rouge", "linear", True, {}),
    ("rouge1", "linear", True, {}),
    ("rouge2", "linear", True, {}),
    ("rougel", "linear", True, {}),
    ("rougelsum", "linear", True, {}),
    ("sequence_f1", "linear", True, {}),
    ("chrf", "linear", True, {}),
    ("ter", "linear", False, {}),
    ("macro_f1", "linear", True, {}),
    ("normalized_aggregate_score", "discontinuous", True, {}),
    # mirage eval --until-pass, pooled by mirage analyze (pass_rates.csv): passes per sample, a
    # probability of the whole target (so it compounds like p**L) with no step per item: it is
    # resolved far below 1 / items
    (
        "pass_rate_sampled",
        "nonlinear",
        True,
        dict(description="passes per sample when each item is sampled until its first pass (pooled over items)"),
    ),
    # BIG-bench only; kinds follow the paper's split (log-probabilities are continuous; a
    # probability of the whole target compounds like p**L)
    ("weighted_log_probabilities", "linear", True, dict(context=Context.BIGBENCH.value)),
    ("log_likelihood_per_char", "linear", True, dict(context=Context.BIGBENCH.value)),
    ("log_likelihood_per_word", "linear", True, dict(context=Context.BIGBENCH.value)),
    ("weighted_probabilities", "nonlinear", True, dict(context=Context.BIGBENCH.value)),
    # the theory's curves (mirage.model), in the vocabulary of the kinds
    ("cross_entropy", "linear", False, dict(context=Context.THEORY.value)),
    ("p_token", "linear", True, dict(context=Context.THEORY.value)),
    ("accuracy", "nonlinear", True, dict(context=Context.THEORY.value)),
)

for _name, _kind, _higher, _extra in _SCORE_NAMES:
    register_metric(Metric(_name, _kind, _higher, **_extra))

# the theory's curves, in the columns' order of theory.csv (the last four are record metrics)
THEORY_METRICS = (
    "cross_entropy",
    "p_token",
    "accuracy",
    "token_edit_distance",
    "target_logprob",
    "multiple_choice_grade",
    "brier_score",
)
