"""CS-Flow adapter: native conformance, flow properties, upstream conformance and parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adapters.csflow import CSFlow, networks
from orchestrator.errors import UserError
from tests.upstream import need_checkout

TINY = {
    "extractor": "efficientnet-b0",
    "pretrained": False,
    "image_size": 128,
    "meta_epochs": 1,
    "sub_epochs": 1,
    "fc_internal": 16,
    "n_coupling_blocks": 2,
    "kernel_sizes": [3, 5],
    "batch_size": 16,
}


def _needs_upstream() -> Path:
    return need_checkout("csflow", "efficientnet_pytorch")


def test_image_size_must_be_multiple_of_128() -> None:
    with pytest.raises(UserError, match="multiple of 128"):
        CSFlow(TINY | {"image_size": 96}, source="native")


def test_flow_starts_as_permutation_and_scores_follow_upstream() -> None:
    torch.manual_seed(0)
    flow = networks.CrossScaleFlow(8, 2, 4, [3, 5], clamp=3.0)
    xs = [torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2), torch.randn(2, 8, 1, 1)]
    zs, logdet = flow(xs)
    # zero-initialised gains: identity up to the channel permutations, log|det| = 0
    assert torch.allclose(logdet, torch.zeros(2))
    for x, z in zip(xs, zs, strict=True):
        sort_x, sort_z = torch.sort(x.flatten(1), dim=1)[0], torch.sort(z.flatten(1), dim=1)[0]
        assert torch.allclose(sort_x, sort_z)
    flat = torch.cat([z.flatten(1) for z in zs], dim=1)
    assert torch.allclose(networks.image_scores(zs), (flat**2 / 2).mean(1))
    assert networks.anomaly_maps(zs).shape == (2, 4, 4)
    # a learned scale changes the log-determinant consistently with the latents
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    zs, logdet = flow(xs)
    assert not torch.allclose(logdet, torch.zeros(2))
    assert torch.isfinite(networks.nll_loss(zs, logdet))


def test_native_lite0_extractor_is_the_pretrained_stage_before_the_top() -> None:
    from adapters.csflow.native import NativeExtractor

    ext = NativeExtractor("efficientnet-lite0", True, None, 0)
    assert ext.channels == 192  # Lite0's 192-channel stride-32 stage (B5's block 35 analogue)
    out = ext(torch.randn(1, 3, 128, 256))
    assert [tuple(o.shape) for o in out] == [(1, 192, 4, 8), (1, 192, 2, 4), (1, 192, 1, 2)]
    assert CSFlow.backbones({"extractor": "efficientnet-lite0", "pretrained": True}, "native")[0][
        :2
    ] == ("efficientnet_lite0", True)


@pytest.mark.upstream
def test_upstream_extractor_with_lite0_equals_native() -> None:
    """Upstream's FeatureExtractor around the resolver's Lite0 (swapped in at run time) gives
    the native extractor's features exactly: both sources see the same pretrained features."""
    checkout = _needs_upstream()
    from adapters.csflow import upstream
    from adapters.csflow.native import NativeExtractor

    mods = upstream.load_upstream(checkout)
    up = upstream.UpstreamExtractor(mods, "efficientnet_lite0", True, None, 0)
    nat = NativeExtractor("efficientnet-lite0", True, None, 0)
    assert up.layer == 14 and up.channels == nat.channels == 192
    x = torch.randn(2, 3, 128, 128)
    for a, b in zip(up(x), nat(x), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # the swap is undone: upstream's own from_pretrained is back
    assert mods["model"].EfficientNet.from_pretrained.__func__.__name__ == "from_pretrained"
