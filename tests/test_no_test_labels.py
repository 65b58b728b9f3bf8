"""Nothing chosen or fitted on test labels: a survey trial's scoring (an adapter) and an
ensemble trial's scoring (members, output-level ensembles, the feature network) give every
test image the same score and probability when the test labels and masks are shuffled.

What is shuffled: each test image keeps its file but gets another image's label, subset and
masks. Anything that calibrated, normalised or weighted with test labels (as the ensemble's
map normalisation with test good images and cross-fitted calibration once did) changes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adapters.patchcore import PatchCore
from adapters.pixelstats import PixelStats
from orchestrator.data import load_category
from orchestrator.data.types import SampleSet
from orchestrator.data.validation import protocol_sets
from orchestrator.ensemble.scoring import score_ensemble
from orchestrator.survey import fit_and_score

PC = {
    "backbone": "resnet18",
    "pretrained": False,
    "layers": ["layer2", "layer3"],
    "image_size": [48, 64],
    "pretrain_embed_dimension": 32,
    "target_embed_dimension": 32,
    "coreset_percentage": 0.25,
    "smoothing_sigma": 1,
}


def shuffled(test: SampleSet, seed: int = 0) -> SampleSet:
    """The same images in the same order, labels/subsets/masks permuted among them."""
    order = np.random.default_rng(seed).permutation(len(test))
    assert (test.labels[order] != test.labels).any()
    samples = [
        replace(s, label=test[j].label, subset=test[j].subset, mask_paths=test[j].mask_paths)
        for s, j in zip(test, order, strict=True)
    ]
    return replace(test, samples=samples)


@pytest.fixture(scope="module")
def sets(tiny_synthetic, tmp_path_factory):
    cat = load_category(tiny_synthetic / "pushpins")
    train, validation = protocol_sets(cat, tmp_path_factory.mktemp("validation"))
    test = cat.split("test")
    return train, validation, test, shuffled(test)


def test_shuffle_changes_labels_and_masks_only(sets) -> None:
    _, _, test, mixed = sets
    assert [s.image_path for s in test] == [s.image_path for s in mixed]
    assert (test.labels != mixed.labels).any()
    assert (test.load_masks() != mixed.load_masks()).any()


@pytest.mark.parametrize("cls,config", [(PixelStats, {"grid": [16, 16]}), (PatchCore, PC)])
def test_survey_scoring_ignores_test_labels(sets, cls, config) -> None:
    train, validation, test, mixed = sets
    a = fit_and_score(cls(config), train, validation, test)
    b = fit_and_score(cls(config), train, validation, mixed)
    np.testing.assert_array_equal(a.preds.image_scores, b.preds.image_scores)
    np.testing.assert_array_equal(a.preds.anomaly_maps, b.preds.anomaly_maps)
    np.testing.assert_allclose(a.probs, b.probs, rtol=0, atol=1e-12)
    assert a.validation == b.validation


def test_ensemble_scoring_ignores_test_labels(sets) -> None:
    train, validation, test, mixed = sets
    names = ["pixelstats", "patchcore"]
    members = [PixelStats({"grid": [16, 16], "seed": 0}).fit(train), PatchCore(PC).fit(train)]
    config = {"hidden": 32, "epochs": 5, "batch_size": 256, "smoothing_sigma": 1.0, "seed": 0}
    a = score_ensemble(members, names, config, train, validation, test)
    b = score_ensemble(members, names, config, train, validation, mixed)
    assert [x.name for x in a.approaches] == [x.name for x in b.approaches]
    assert {x.kind for x in a.approaches} == {"member", "output", "feature"}
    for x, y in zip(a.approaches, b.approaches, strict=True):
        np.testing.assert_allclose(x.preds.image_scores, y.preds.image_scores, atol=1e-6)
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-6, err_msg=x.name)
        np.testing.assert_allclose(x.preds.anomaly_maps, y.preds.anomaly_maps, atol=1e-5)
    for kind in a.calibrated:
        np.testing.assert_allclose(a.calibrated[kind], b.calibrated[kind], atol=1e-6)
