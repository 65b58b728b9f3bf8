"""Native PatchCore: contract, coreset, features, and detection on the synthetic set."""

import numpy as np
import pytest
import torch

from adapters.patchcore import PatchCore
from adapters.patchcore.coreset import approximate_greedy_coreset
from orchestrator.data import load_category
from orchestrator.metrics import evaluate
from orchestrator.registry import load_registry

TINY = {
    "backbone": "resnet18",
    "pretrained": False,
    "image_size": 64,
    "pretrain_embed_dimension": 64,
    "target_embed_dimension": 64,
}


def test_coreset_covers_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, (5, 16))
    x = torch.from_numpy(np.concatenate([c + rng.normal(0, 0.1, (200, 16)) for c in centers]))
    idx = approximate_greedy_coreset(x.float(), 5 / 1000, projection_dim=8, seed=1)
    assert len(idx) == 5
    assert sorted(set((idx // 200).tolist())) == [0, 1, 2, 3, 4]  # one pick per cluster
    assert np.array_equal(idx, approximate_greedy_coreset(x.float(), 5 / 1000, 8, seed=1))


def test_features_are_nn_differences(tiny_synthetic):
    cat = load_category(tiny_synthetic / "flat_connector")
    pc = PatchCore(TINY).fit(cat.split("train"))
    train_feats = pc.extract_features(cat.split("train")[:2]).features
    assert train_feats.shape[:2] == (2, 64) and (train_feats >= 0).all()
    test_feats = pc.extract_features(cat.split("test")).features
    # patches of normal training images are in or near the bank: smaller differences
    assert train_feats.mean() < test_feats.mean()


def test_reweighting_keeps_ranking_sensible(tiny_synthetic):
    cat = load_category(tiny_synthetic / "flat_connector")
    test = cat.split("test")
    pc = PatchCore(TINY | {"reweight": True}).fit(cat.split("train"))
    scores = pc.predict(test).image_scores
    assert np.isfinite(scores).all() and (scores >= 0).all()


@pytest.mark.heavy
def test_quick_profile_detects_structural_flat_connector_anomalies():
    from orchestrator.data import load_dataset

    cat = load_dataset("synthetic", categories=["flat_connector"])[0]
    pc = load_registry().build("patchcore", profile="quick").fit(cat.split("train"))
    test = cat.split("test")
    m = evaluate(test, pc.predict(test))
    assert m["image_auroc_structural"] > 0.8 and m["pixel_auroc"] > 0.9
