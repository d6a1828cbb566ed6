"""Vision metrics, emergence tables and small training runs (determinism, on-disk formats)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from mirage.stats import emergence_score
from mirage.vision.datasets import ImageSet
from mirage.vision.experiments import EXPERIMENTS, compare_headline, run_experiment, vision_emergence_table
from mirage.vision.models import CNNSize, PatchTransformer, TransformerSize, to_patch_sequence
from mirage.vision.scoring import classifier_metrics, reconstruction_metrics, subset_accuracy


def test_subset_accuracy_is_the_exact_expectation_over_subsets():
    correct = np.array([1, 1, 0, 1, 1, 0, 1], dtype=bool)
    n = len(correct)
    for k in (1, 2, 3, 5, 7):
        brute = np.mean([correct[list(s)].all() for s in itertools.combinations(range(n), k)])
        assert subset_accuracy(int(correct.sum()), n, k) == pytest.approx(brute, rel=1e-12)
    assert subset_accuracy(3, 10, 4) == 0.0
    # log-space: large n and K do not overflow
    assert subset_accuracy(9_900, 10_000, 100) == pytest.approx(0.99**100, rel=0.05)
    with pytest.raises(ValueError):
        subset_accuracy(3, 5, 6)


def test_classifier_and_reconstruction_metrics():
    correct = np.array([True] * 9 + [False])
    logp = np.log(np.linspace(0.1, 0.9, 10))
    by_name = {m.metric: m for m in classifier_metrics(correct, logp, (1, 5))}
    assert by_name["accuracy"].value == 0.9 and by_name["accuracy"].metric_kind == "linear"
    assert by_name["subset_accuracy_k1"].value == pytest.approx(0.9)
    assert by_name["subset_accuracy_k5"].value == pytest.approx(0.5)  # C(9,5)/C(10,5)
    assert by_name["subset_accuracy_k5"].n_samples == 2 and by_name["subset_accuracy_k5"].metric_kind == "discontinuous"
    assert (
        by_name["cross_entropy"].value == pytest.approx(-logp.mean()) and not by_name["cross_entropy"].higher_is_better
    )
    rec = {m.metric: m for m in reconstruction_metrics(np.array([0.0005, 0.002, 0.004, 0.02]), (0.001, 0.003))}
    assert rec["mse"].value == pytest.approx(0.006625)
    assert rec["reconstruction_c0.001"].value == 0.25 and rec["reconstruction_c0.003"].value == 0.5


def test_emergence_table_orients_lower_is_better_metrics():
    params = [10, 100, 1000, 10_000, 100_000]
    rows = []
    for p, mse, frac in zip(params, [0.05, 0.04, 0.03, 0.02, 0.01], [0.0, 0.0, 0.0, 0.0, 0.9]):
        rows.append(
            dict(
                family="f",
                model=f"m{p}",
                params=p,
                task="t",
                metric="mse",
                metric_kind="linear",
                higher_is_better=False,
                value=mse,
            )
        )
        rows.append(
            dict(
                family="f",
                model=f"m{p}",
                params=p,
                task="t",
                metric="reconstruction_c0.001",
                metric_kind="discontinuous",
                higher_is_better=True,
                value=frac,
            )
        )
    table = vision_emergence_table(pd.DataFrame(rows)).set_index("metric")
    assert table.loc["mse", "emergence_score"] == pytest.approx(-4.0)  # falling straight line
    assert table.loc["mse", "oriented_score"] == pytest.approx(4.0)
    assert table.loc["reconstruction_c0.001", "flat_then_jump"]
    spec = dataclasses.replace(EXPERIMENTS["autoencoder"], family="f", headline="reconstruction_c0.001")
    (comp,) = compare_headline(spec, table.reset_index())
    assert comp.discontinuous_exceeds and comp.continuous_metric == "mse"


def _tiny_digits(n=240, side=8, seed=0):
    """Two-class images with a bright left or right half, plus noise (learnable in one epoch)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.3, size=(n, side, side, 1)).astype(np.float32)
    for i, y in enumerate(labels):
        half = slice(0, side // 2) if y == 0 else slice(side // 2, side)
        images[i, :, half] += 0.6
    return ImageSet("tiny", images, labels.astype(np.int64))


def _small_spec(name, sizes, **kw):
    return dataclasses.replace(EXPERIMENTS[name], sizes=sizes, epochs=2, **kw)


def test_training_is_deterministic_per_seed():
    spec = _small_spec("cnn", (CNNSize(1, 1, 2), CNNSize(2, 2, 4), CNNSize(4, 4, 8)), ks=(1, 5))
    data = _tiny_digits()
    a = run_experiment(spec, data, quick=False, seed=7, progress=False)
    b = run_experiment(spec, data, quick=False, seed=7, progress=False)
    c = run_experiment(spec, data, quick=False, seed=8, progress=False)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert not np.allclose(a.scores["value"], c.scores["value"])
    # the quick run trains every other size, each exactly as the full run does
    quick = run_experiment(spec, data, quick=True, seed=7, progress=False)
    assert list(quick.scores["model"].unique()) == [spec.sizes[0].name, spec.sizes[2].name]
    pd.testing.assert_frame_equal(
        quick.scores, a.scores[a.scores.model.isin(quick.scores.model)].reset_index(drop=True)
    )
    # every metric comes from the stored predictions
    acc = a.scores[a.scores.metric == "accuracy"].set_index("model")["value"]
    assert (a.predictions.groupby("model")["correct"].mean().reindex(acc.index) == acc).all()
    assert torch.get_num_threads() >= 1


def test_families_accept_user_image_sizes():
    """28x28 images (MNIST, Omniglot) go through the CNN and the transformer unchanged."""
    data = _tiny_digits(n=60, side=28)
    for name, sizes in (
        ("cnn", (CNNSize(1, 1, 2), CNNSize(2, 2, 3), CNNSize(2, 3, 4))),
        ("transformer", (TransformerSize(4, 1, 1), TransformerSize(8, 1, 2), TransformerSize(8, 2, 2))),
    ):
        result = run_experiment(_small_spec(name, sizes, ks=(1, 3)), data, quick=False, seed=0, progress=False)
        assert result.scores["params"].is_monotonic_increasing
        assert len(result.predictions) == 3 * 24
    with pytest.raises(ValueError, match="square images"):
        run_experiment(EXPERIMENTS["transformer"], _tiny_digits(n=20, side=6), quick=True, progress=False)


def test_transformer_is_causal():
    """Changing the last patch cannot change what earlier positions compute."""
    torch.manual_seed(0)
    model = PatchTransformer(TransformerSize(8, 2, 2), patch=2, n_tokens=16, token_dim=4, n_classes=3).eval()
    x = torch.rand(2, 8, 8, 1)
    y = x.clone()
    y[:, 6:, 6:] = 0.0  # only the last patch in raster order

    def hidden(t: torch.Tensor) -> torch.Tensor:
        return model.blocks(
            model.embed(to_patch_sequence(t, 2)) + model.position, mask=model.causal_mask, is_causal=True
        )

    with torch.no_grad():
        hx, hy = hidden(x), hidden(y)
    torch.testing.assert_close(hx[:, :-1], hy[:, :-1])
    assert not torch.allclose(hx[:, -1], hy[:, -1])


def test_emergence_scores_match_core_statistic():
    spec = _small_spec("autoencoder", EXPERIMENTS["autoencoder"].sizes[:3])
    rng = np.random.default_rng(0)
    data = ImageSet("patches", rng.uniform(size=(120, 4, 4, 3)).astype(np.float32), None)
    result = run_experiment(spec, data, quick=False, seed=0, progress=False)
    table = vision_emergence_table(result.scores)
    mse = result.scores[result.scores.metric == "mse"]
    expected = emergence_score(mse["params"], mse["value"]).score
    assert table.set_index("metric").loc["mse", "emergence_score"] == pytest.approx(expected)
