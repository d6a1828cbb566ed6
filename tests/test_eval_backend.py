"""HFCausalLM numbers against independent computations on tiny random GPT-2 models."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import make_tiny_gpt2  # noqa: E402

from mirage.evaluate.backends import HFCausalLM  # noqa: E402
from mirage.io.tasks import arithmetic_task  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # a wide init makes greedy outputs vary from step to step (the default gives one repeated char)
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny"), n_layer=2, n_embd=32, seed=3, init_std=0.3)


@pytest.fixture(scope="module")
def task():
    # prompts of different lengths (0 to 2 shots) so batches really pad
    samples = []
    for shots in (0, 1, 2):
        samples += list(arithmetic_task("add", digits=2, n=8, seed=shots, shots=shots).samples)
    return samples


@pytest.fixture(scope="module")
def backend(model_dir):
    torch.set_num_threads(1)
    return HFCausalLM(str(model_dir), batch_size=5)


def _reference_logprobs(model, prompt_ids, cont_ids):
    """Plain torch: one unpadded forward pass, float64 log-softmax, read off each target token."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + cont_ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return np.array([logp[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(cont_ids)])


def test_target_logprobs_equal_plain_log_softmax(backend, task):
    got = backend.score_targets([s.prompt for s in task], [s.target for s in task])
    for s, g in zip(task, got):
        p, t = backend.encode(s.prompt), backend.encode(s.target)
        ref = _reference_logprobs(backend.model, p, t)
        assert g.logprobs.dtype == np.float64 and g.logprobs.shape == (len(t),)
        np.testing.assert_allclose(g.logprobs, ref, atol=1e-4, rtol=0)
        assert g.tokens == tuple(s.target)  # character tokenizer: one token per character
        assert (g.logprobs < 0).all()


def test_batched_equals_unbatched_and_left_equals_right_padding(model_dir, backend, task):
    prompts, targets = [s.prompt for s in task], [s.target for s in task]
    batched = backend.score_targets(prompts, targets)
    single = HFCausalLM(str(model_dir), batch_size=1).score_targets(prompts, targets)
    right = HFCausalLM(str(model_dir), batch_size=7, padding_side="right").score_targets(prompts, targets)
    for a, b, c in zip(batched, single, right):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(a.logprobs, c.logprobs, atol=1e-5, rtol=0)


def test_kv_cached_choices_equal_full_recomputation(backend, task):
    # options of unequal token counts and one prompt with fewer options than the others
    choices = [s.choices for s in task]
    choices[0] = choices[0][:3]
    got = backend.score_choices([s.prompt for s in task], choices)
    for s, opts, g in zip(task, choices, got):
        p = backend.encode(s.prompt)
        ref = [_reference_logprobs(backend.model, p, backend.encode(o)).sum() for o in opts]
        np.testing.assert_allclose(g.logprobs, ref, atol=1e-4, rtol=0)
        assert g.lengths == tuple(len(o) for o in opts)


def test_greedy_generation_equals_model_generate(backend, task):
    prompts = [s.prompt for s in task]
    got = backend.generate(prompts, stop=[], max_new_tokens=8)
    tok = backend.tokenizer
    texts = set()
    for prompt, g in zip(prompts, got):
        ids = torch.tensor([backend.encode(prompt)])
        out = backend.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        assert g.text == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert g.tokens == tuple(g.text)
        texts.add(g.text)
    assert len(texts) > 1  # the comparison is not between constant strings


def test_generation_stops_at_the_stop_string(backend, task):
    prompts = [s.prompt for s in task]
    free = backend.generate(prompts, stop=[], max_new_tokens=8)
    # use a character that some outputs produce after their first position as the stop string
    stop = next(g.text[2] for g in free if len(g.text) > 2)
    cut = backend.generate(prompts, stop=[stop], max_new_tokens=8)
    for f, c in zip(free, cut):
        assert c.text == f.text.split(stop)[0]
    assert any(stop in f.text for f in free)
