"""SimpleNet: native source against the contract, its training, its upstream source."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from adapters.conformance import make_tiny_category
from adapters.simplenet import SimpleNet
from adapters.simplenet.native import discriminator, feature_adapter

TINY = {
    "backbone": "resnet18",
    "pretrained": False,
    "image_size": [48, 64],
    "pretrain_embed_dimension": 64,
    "target_embed_dimension": 64,
    "meta_epochs": 8,
    "gan_epochs": 4,
    "dsc_hidden": 64,
    "batch_size": 4,
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    cat = make_tiny_category(tmp_path_factory.mktemp("sn"))
    return cat, SimpleNet(TINY).fit(cat.split("train"))


def test_trains_a_fixed_number_of_steps_and_separates_noise(fitted) -> None:
    cat, a = fitted
    n = len(cat.split("train"))
    assert a.engine.steps == TINY["meta_epochs"] * TINY["gan_epochs"] * math.ceil(n / 4)
    z = torch.from_numpy(a.extract_features(cat.split("train")).features)
    z = z.permute(0, 2, 3, 1).reshape(-1, 64)
    with torch.no_grad():
        true = a.engine.disc(z).mean()
        fake = a.engine.disc(z + 0.015 * torch.randn_like(z)).mean()
    assert true > fake  # the discriminator learnt true vs Gaussian-noise fake features


def test_image_score_is_max_negated_discriminator(fitted) -> None:
    cat, a = fitted
    test = cat.split("test")
    z = torch.from_numpy(a.extract_features(test).features)
    n, d, h, w = z.shape
    with torch.no_grad():
        patch = -a.engine.disc(z.permute(0, 2, 3, 1).reshape(-1, d)).reshape(n, -1)
    assert np.allclose(a.predict(test).image_scores, patch.max(1).values.numpy(), atol=1e-5)


def test_architecture_follows_the_paper() -> None:
    disc = discriminator(32, n_layers=2, hidden=16)
    linears = [m for m in disc.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 16), (16, 1)]
    assert linears[-1].bias is None and any(isinstance(m, nn.BatchNorm1d) for m in disc)
    adapter = feature_adapter(32, 1)
    assert len(adapter) == 1 and adapter[0].weight.shape == (32, 32)
