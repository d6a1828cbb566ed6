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


def _reference_greedy(model, tok, prompt_ids, stop, max_new_tokens):
    """Plain greedy decoding: one unpadded row, the whole sequence recomputed for every token
    (no cache, no batch), ended by EOS, a stop string or the token limit; cut before the stop."""
    ids, new = list(prompt_ids), []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
            ids.append(nxt)
            if any(s in tok.decode(new) for s in stop):
                break
    text = tok.decode(new, skip_special_tokens=True)
    return text[: min((text.find(s) for s in stop if s in text), default=len(text))]


def test_generation_equals_full_recompute_greedy_with_rows_stopping_early(backend, task, monkeypatch):
    from mirage.evaluate import backends as B

    assert backend._inplace_cache(1) is not None  # this transformers takes the preallocated cache
    layer = B._inplace_layer_class()
    drops = []
    select = layer.batch_select_indices
    monkeypatch.setattr(layer, "batch_select_indices", lambda self, idx: (drops.append(len(idx)), select(self, idx)))
    prompts = [s.prompt for s in task]
    free = backend.generate(prompts, stop=[], max_new_tokens=10)
    # a stop string that ends some rows after a token or two and leaves others running to the limit
    stop = next(g.text[1] for g in free if len(g.text) > 1)
    got = backend.generate(prompts, stop=[stop, "never"], max_new_tokens=10)
    _, _, shared = backend.score_all(prompts, [s.target for s in task], None, [stop, "never"], 10)
    lengths = set()
    for prompt, g, h in zip(prompts, got, shared):
        ref = _reference_greedy(backend.model, backend.tokenizer, backend.encode(prompt), [stop, "never"], 10)
        assert g.text == ref and h.text == ref
        lengths.add(len(ref))
    assert min(lengths) < 3 and max(lengths) == 10  # rows stopped early beside rows that ran on
    assert drops  # finished rows were dropped from the batch


def test_score_all_equals_the_separate_requests(model_dir, backend, task):
    prompts, targets, choices = [s.prompt for s in task], [s.target for s in task], [s.choices for s in task]
    choices[0] = choices[0][:2]  # fewer options than the others
    # one prompt longer than the context window: cut, so it takes the separate requests
    prompts[1], n_ctx = prompts[1] * 40, backend.max_length
    assert len(backend.encode(prompts[1])) > n_ctx
    stop = ["\n"]
    scores, options, outputs = backend.score_all(prompts, targets, choices, stop, 8)
    for a, b in zip(scores, backend.score_targets(prompts, targets)):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
        assert a.tokens == b.tokens
    for a, b in zip(options, backend.score_choices(prompts, choices)):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
        assert a.lengths == b.lengths
    assert outputs == backend.generate(prompts, stop, 8)
    # the packed options against plain full recomputation (a model that ignored the 4D mask would differ)
    assert backend._packing_works()
    for s, opts, got in zip(task[2:], choices[2:], options[2:]):
        p = backend.encode(s.prompt)
        ref = [_reference_logprobs(backend.model, p, backend.encode(o)).sum() for o in opts]
        np.testing.assert_allclose(got.logprobs, ref, atol=1e-4, rtol=0)
    # without packing (the repeated-cache path) the numbers are the same
    plain = HFCausalLM(str(model_dir), batch_size=5)
    plain._packing = False
    s2, o2, g2 = plain.score_all(prompts, targets, choices, stop, 8)
    for a, b in zip(s2 + o2, scores + options):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    assert g2 == outputs
