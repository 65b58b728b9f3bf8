"""Locally aware patch features (PatchCore, section 3.1; also SimpleNet's feature extractor).

For each chosen backbone layer: every position's ``p x p`` neighbourhood (zero-padded) is
flattened channel-major and reduced to ``pretrain_dim`` values by adaptive average pooling;
deeper layers are bilinearly resized to the first layer's grid; the per-layer vectors are
concatenated and reduced again to ``target_dim`` by adaptive average pooling. The result is
one ``target_dim`` vector per position of the first layer's grid.

PatchCore and SimpleNet (native and upstream) both extract these features from the same config
keys: ``backbone``, ``pretrained``, ``weights_path``, ``seed``, ``layers``, ``patchsize``,
``pretrain_embed_dimension``, ``target_embed_dimension`` and ``image_size``.
``build_embedder`` builds the native extractor from them, ``upstream_embedder_args`` the
arguments upstream's ``load(...)`` of both takes for its own; ``embedder_defaults``
(adapters.common.config, without torch) gives their shared defaults (both adapters'
``default_config``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from adapters.common.backbone import LayerFeatures, as_size
from adapters.common.weights import config_backbone


class PatchEmbedder(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        layers: Sequence[str],
        patchsize: int = 3,
        pretrain_dim: int = 1024,
        target_dim: int = 1024,
    ):
        super().__init__()
        self.features = LayerFeatures(backbone, layers)
        self.patchsize = int(patchsize)
        self.pretrain_dim = int(pretrain_dim)
        self.target_dim = int(target_dim)

    def _local(self, fmap: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``[N, C, h, w]`` -> ``[N, gh, gw, pretrain_dim]`` on the reference grid."""
        n, c, h, w = fmap.shape
        p = self.patchsize
        cols = F.unfold(fmap, kernel_size=p, padding=(p - 1) // 2)  # [N, C*p*p, h*w]
        cols = cols.view(n, c * p * p, h, w)
        if (h, w) != grid:
            cols = F.interpolate(cols, size=grid, mode="bilinear", align_corners=False)
        vec = cols.permute(0, 2, 3, 1).reshape(-1, 1, c * p * p)
        vec = F.adaptive_avg_pool1d(vec, self.pretrain_dim)
        return vec.view(n, grid[0], grid[1], self.pretrain_dim)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N, 3, H, W]`` -> patch features ``[N, gh, gw, target_dim]``."""
        fmaps = self.features(x)
        grid = tuple(fmaps[0].shape[-2:])
        per_layer = torch.cat([self._local(f, grid) for f in fmaps], dim=-1)
        n, gh, gw, d = per_layer.shape
        out = F.adaptive_avg_pool1d(per_layer.reshape(-1, 1, d), self.target_dim)
        return out.view(n, gh, gw, self.target_dim)


def build_embedder(config: Mapping[str, Any], device: torch.device) -> PatchEmbedder:
    """The patch feature extractor a config describes (backbone seeded by ``seed``)."""
    c = config
    return PatchEmbedder(
        config_backbone(c),
        c["layers"],
        c["patchsize"],
        c["pretrain_embed_dimension"],
        c["target_embed_dimension"],
    ).to(device)


def upstream_embedder_args(config: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The keyword arguments of upstream PatchCore's ``load`` that SimpleNet's ``load`` shares:
    our backbone (named after ``backbone``), layers, input shape, dimensions, patch size."""
    c = config
    backbone = config_backbone(c)
    backbone.name = c["backbone"]
    return {
        "backbone": backbone,
        "layers_to_extract_from": list(c["layers"]),
        "device": device,
        "input_shape": (3, *as_size(c["image_size"])),
        "pretrain_embed_dimension": int(c["pretrain_embed_dimension"]),
        "target_embed_dimension": int(c["target_embed_dimension"]),
        "patchsize": int(c["patchsize"]),
    }
