"""RevDist (RD++) adapter: conformance (native, upstream) and loss/map building blocks."""

from __future__ import annotations

import numpy as np
import torch

from adapters.revdist import networks
from tests.upstream import need_checkout

TINY = {
    "backbone": "resnet18",
    "pretrained": False,
    "image_size": 64,
    "epochs": 1,
    "batch_size": 8,
}


def _need_upstream() -> None:
    need_checkout("revdist", "numba", "geomloss", "cv2")


def test_upstream_cuda_target_patch_is_scoped() -> None:
    from adapters.revdist.upstream import cuda_as

    with cuda_as(torch.device("cpu")):
        assert torch.ones(2).to("cuda").device.type == "cpu"
        assert torch.ones(2).to(device="cuda:0").device.type == "cpu"
        assert torch.ones(2).to(torch.float64).dtype == torch.float64
    assert "to" not in torch.Tensor.__dict__


def test_sinkhorn_divergence_zero_on_same_cloud_positive_on_shifted() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g)
    assert abs(float(networks.sinkhorn_divergence(x, x))) < 1e-4
    far = float(networks.sinkhorn_divergence(x, x + 3.0))
    near = float(networks.sinkhorn_divergence(x, x + 0.5))
    assert far > near > 0


def test_anomaly_map_is_sum_of_cosine_distances() -> None:
    t = [torch.randn(1, 4, 8, 8), torch.randn(1, 6, 4, 4), torch.randn(1, 8, 2, 2)]
    assert torch.allclose(networks.anomaly_map(t, t, (16, 16)), torch.zeros(1, 16, 16), atol=1e-6)
    s = [-x for x in t]  # opposite directions: 1 - cos = 2 per scale
    assert torch.allclose(networks.anomaly_map(t, s, (16, 16)), torch.full((1, 16, 16), 6.0))
    assert float(networks.distill_loss(t, s)) == 6.0 or np.isclose(
        float(networks.distill_loss(t, s)), 6.0
    )


def test_noise_patches_touch_one_small_region() -> None:
    rng = np.random.default_rng(0)
    imgs = np.full((3, 64, 64, 3), 0.5, np.float32)
    noisy = networks.noise_patches(imgs, rng)
    changed = np.abs(noisy - imgs).max(axis=-1) > 0
    for c in changed:
        assert 0 < c.sum() < 64 * 64 / 4
    assert np.abs(noisy - imgs).max() <= 0.2 + 1e-6
