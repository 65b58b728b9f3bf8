"""RevDist (RD++) adapter: native conformance and loss/map building blocks."""

from __future__ import annotations

import numpy as np
import torch

from adapters.conformance import check_adapter
from adapters.revdist import RevDist, native

TINY = {
    "backbone": "resnet18",
    "pretrained": False,
    "image_size": 64,
    "epochs": 1,
    "batch_size": 8,
}


def test_native_conformance() -> None:
    report = check_adapter(RevDist, config=TINY, source="native")
    assert "deterministic" in report.passed and "extract-features" in report.passed


def test_sinkhorn_divergence_zero_on_same_cloud_positive_on_shifted() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g)
    assert abs(float(native.sinkhorn_divergence(x, x))) < 1e-4
    far = float(native.sinkhorn_divergence(x, x + 3.0))
    near = float(native.sinkhorn_divergence(x, x + 0.5))
    assert far > near > 0


def test_anomaly_map_is_sum_of_cosine_distances() -> None:
    t = [torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4), torch.randn(1, 8, 2, 2)]
    assert torch.allclose(native.anomaly_map(t, t, (16, 16)), torch.zeros(1, 16, 16), atol=1e-6)
    s = [-x for x in t]  # opposite directions: 1 - cos = 2 per scale
    assert torch.allclose(native.anomaly_map(t, s, (16, 16)), torch.full((1, 16, 16), 6.0))
    assert float(native.distill_loss(t, s)) == 6.0 or np.isclose(
        float(native.distill_loss(t, s)), 6.0
    )


def test_noise_patches_touch_one_small_region() -> None:
    rng = np.random.default_rng(0)
    imgs = np.full((3, 64, 64, 3), 0.5, np.float32)
    noisy = native.noise_patches(imgs, rng)
    changed = np.abs(noisy - imgs).max(axis=-1) > 0
    for c in changed:
        assert 0 < c.sum() < 64 * 64 / 4
    assert np.abs(noisy - imgs).max() <= 0.2 + 1e-6
