"""The ensemble's transformation block, network loss/training and output-level baselines,
on hand-made arrays (no data, no members)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapters.base import Predictions
from orchestrator.ensemble.baselines import (
    cawpe_weights,
    mean_probs,
    normalised_mean_maps,
    output_ensembles,
)
from orchestrator.ensemble.network import (
    EnsembleNet,
    score_patches,
    train_network,
    truncated_l1_loss,
)
from orchestrator.ensemble.run import combinations
from orchestrator.ensemble.transform import (
    PCA,
    GlobalTransform,
    IndependentTransform,
    components_for_variance,
    split_components,
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_split_even_and_remainder_goes_to_the_others():
    assert split_components(12, [12, 8, 8]) == [4, 4, 4]
    assert split_components(8, [8, 6, 5]) == [2, 3, 3]  # remainder 2 -> members 2 and 3
    assert split_components(10, [10, 9, 9]) == [3, 4, 3]  # remainder 1 -> member 2
    assert split_components(7, [7, 7]) == [3, 4]
    assert sum(split_components(1536, [1536, 256, 64])) == 1536


def test_split_caps_at_channels_and_rejects_impossible_totals():
    assert split_components(10, [2, 10, 10]) == [2, 5, 3]
    with pytest.raises(ValueError):
        split_components(2, [4, 4, 4])
    with pytest.raises(ValueError):
        split_components(20, [4, 4])


def test_components_for_variance():
    assert components_for_variance(np.array([0.6, 0.3, 0.1]), 0.85) == 2
    assert components_for_variance(np.array([0.6, 0.3, 0.1]), 0.6) == 1
    assert components_for_variance(np.array([0.6, 0.3, 0.1]), 1.0) == 3


def _feats(rng, n, c, h, w, shift=0.0, scale=None):
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    if scale is not None:
        x *= np.asarray(scale, np.float32)[None, :, None, None]
    return x + shift


def test_independent_transform_shapes_resize_and_concat():
    rng = np.random.default_rng(0)
    a_tr, b_tr = _feats(rng, 5, 6, 4, 4), _feats(rng, 5, 10, 8, 6)
    t = IndependentTransform().fit([a_tr, b_tr])  # default total = first member's 6 channels
    assert t.shares == [3, 3]
    assert t.size == (8, 6)  # the largest spatial size
    a_te, b_te = _feats(rng, 3, 6, 4, 4), _feats(rng, 3, 10, 8, 6)
    parts = t.transform_members([a_te, b_te])
    assert [p.shape for p in parts] == [(3, 3, 8, 6), (3, 3, 8, 6)]
    fused = t.transform([a_te, b_te])
    assert fused.shape == (3, 6, 8, 6)
    np.testing.assert_allclose(fused[:, :3], parts[0])
    np.testing.assert_allclose(fused[:, 3:], parts[1])
    # odd total: remainder to the second member
    assert IndependentTransform(total=7).fit([a_tr, b_tr]).shares == [3, 4]


def test_pca_is_fitted_on_train_only():
    rng = np.random.default_rng(1)
    # train varies mostly along channel 2; test is shifted and varies along channel 0
    train = _feats(rng, 20, 4, 3, 3, scale=[0.1, 0.1, 5.0, 0.1])
    test = _feats(rng, 20, 4, 3, 3, shift=7.0, scale=[9.0, 0.1, 0.1, 0.1])
    t = IndependentTransform(total=1).fit([train])
    pca = t.pcas[0]
    np.testing.assert_allclose(pca.mean, train.mean(axis=(0, 2, 3)), atol=1e-5)
    assert abs(pca.components[0, 2]) > 0.99  # train's direction, not test's
    out = t.transform([test])  # projecting test changes nothing in the fit
    assert out.shape == (20, 1, 3, 3)
    np.testing.assert_allclose(t.pcas[0].mean, pca.mean)


def test_variance_option_picks_per_member_counts():
    rng = np.random.default_rng(2)
    one_dir = _feats(rng, 10, 5, 4, 4, scale=[10, 0.01, 0.01, 0.01, 0.01])
    spread = _feats(rng, 10, 5, 4, 4)
    t = IndependentTransform(variance=0.9).fit([one_dir, spread])
    assert t.shares[0] == 1 and t.shares[1] >= 4


def test_global_transform_one_pca_over_concatenation():
    rng = np.random.default_rng(3)
    a, b = _feats(rng, 4, 3, 2, 2), _feats(rng, 4, 5, 4, 4)
    t = GlobalTransform().fit([a, b])
    assert t.pcas[0].mean.shape == (8,)  # 3 + 5 channels concatenated first
    assert t.shares == [3]  # default total: first member's channels
    assert t.transform([a, b]).shape == (4, 3, 4, 4)


def test_pca_state_roundtrip():
    rng = np.random.default_rng(4)
    a, b = _feats(rng, 4, 3, 2, 2), _feats(rng, 4, 5, 4, 4)
    t = IndependentTransform().fit([a, b])
    u = IndependentTransform()
    u.load_state(t.state())
    np.testing.assert_allclose(u.transform([a, b]), t.transform([a, b]))
    assert isinstance(u.pcas[0], PCA)


def test_truncated_l1_loss_by_hand():
    true = torch.tensor([1.0, 0.2])
    fake = torch.tensor([-1.0, 0.0])
    # true: mean(max(0, .5-1), max(0, .5-.2)) = .15; fake: mean(max(0, .5-1), max(0, .5)) = .25
    assert float(truncated_l1_loss(true, fake, 0.5)) == pytest.approx(0.4)
    assert float(truncated_l1_loss(torch.tensor([0.6]), torch.tensor([-0.7]), 0.5)) == 0.0


def test_discriminator_learns_normal_region():
    rng = np.random.default_rng(5)
    normal = rng.normal(size=(2000, 4)).astype(np.float32) * 0.05
    torch.manual_seed(0)
    net = EnsembleNet([2, 2], [True, False], hidden=32)
    losses = train_network(net, normal, epochs=15, batch_size=256, noise_std=0.5, seed=0)
    assert losses[-1] < losses[0]
    s_normal = score_patches(net, normal[:200]).mean()
    # what it is trained for: noise-perturbed (fake-like) patches score above normal ones
    fake = normal[:200] + rng.normal(size=(200, 4)).astype(np.float32) * 0.5
    assert score_patches(net, fake).mean() > s_normal


def test_output_level_baselines():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    good = np.where(y, 0.9, 0.1)
    bad = np.full(8, 0.6)
    assert np.allclose(mean_probs([good, bad]), (good + bad) / 2)
    w = cawpe_weights([good, bad], y, alpha=4)
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(0.5**4)
    maps = [np.full((2, 3, 3), 10.0), np.full((2, 3, 3), 0.5)]
    ref = [np.array([8.0, 12.0]), np.array([0.0, 1.0])]
    np.testing.assert_allclose(normalised_mean_maps(maps, ref), 0.0, atol=1e-6)


def test_output_ensembles_fit_on_validation_only():
    """Calibrators, CAWPE weights and map statistics come from the validation predictions:
    the test predictions carry no labels, and a member that separates the validation set
    outweighs one that does not."""
    rng = np.random.default_rng(0)
    yv = np.array([0] * 10 + [1] * 10, bool)
    maps_v = rng.normal(5.0, 2.0, (20, 4, 4)).astype(np.float32)
    sharp = Predictions(np.where(yv, 3.0, 1.0) + rng.normal(0, 0.1, 20), maps_v)
    blunt = Predictions(rng.normal(0, 1, 20), maps_v * 10)
    test = [Predictions(np.array([1.0, 3.0]), np.full((2, 4, 4), 5.0, np.float32))] * 2
    out = output_ensembles(test, [sharp, blunt], yv)
    cawpe, mean = out["cawpe"].image_scores, out["mean"].image_scores
    assert cawpe[1] - cawpe[0] > mean[1] - mean[0] > 0  # CAWPE leans on the sharp member
    # maps normalised by each member's validation *good* maps (mean ~5 and ~50)
    ref = [maps_v[~yv], maps_v[~yv] * 10]
    np.testing.assert_allclose(
        out["mean"].anomaly_maps,
        normalised_mean_maps([t.anomaly_maps for t in test], ref),
        rtol=1e-5,
    )


def test_combinations():
    assert combinations(["a", "b", "c"], "pairs") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert len(combinations(["a", "b", "c"], "all")) == 4
    assert combinations(["a", "b"], "given") == [("a", "b")]
