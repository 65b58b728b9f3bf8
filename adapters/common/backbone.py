"""Backbone helpers for the native implementations: named intermediate layers, image
batches, map smoothing. Building a backbone and finding its weights: adapters.common.weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Reached(Exception):
    """Raised by the last hook of one forward pass: the rest of the network is skipped."""


class LayerFeatures(nn.Module):
    """Feature maps of named submodules of a backbone (frozen), e.g. ``["layer2", "layer3"]``
    of a ResNet or ``["_blocks.4", "_blocks.10"]`` of an EfficientNet-Lite.

    Forward hooks, registered for the length of one ``forward`` only, collect the outputs;
    the pass stops after the last layer named (as upstream PatchCore's feature aggregator
    does), so any ``nn.Module`` works and the backbone itself is left untouched.
    """

    def __init__(self, backbone: nn.Module, layers: Sequence[str]):
        super().__init__()
        self.layers = list(layers)
        self.body = backbone
        self._modules_at: list[nn.Module] = []
        for name in self.layers:
            try:
                self._modules_at.append(backbone.get_submodule(name))
            except AttributeError as exc:
                raise UserError(f"backbone has no layer {name!r}") from exc
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.body.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        stop = _Reached()

        def hook_for(name: str):
            def hook(_module, _inputs, output):
                out[name] = output
                if len(out) == len(self.layers):
                    raise stop

            return hook

        handles = [
            m.register_forward_hook(hook_for(n))
            for n, m in zip(self.layers, self._modules_at, strict=True)
        ]
        try:
            self.body(x)
        except _Reached as exc:
            if exc is not stop:  # another LayerFeatures' pass: not ours to swallow
                raise
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in self.layers if n not in out]
        if missing:
            raise UserError(f"backbone layer(s) {', '.join(missing)} never ran in forward()")
        return [out[n] for n in self.layers]


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` config (int or [H, W]) as ``(H, W)``."""
    if isinstance(size, int | float):
        return int(size), int(size)
    return int(size[0]), int(size[1])


def to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> ImageNet-normalised float ``[N, 3, H, W]``."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def batches(
    data: SampleSet, size: tuple[int, int], batch_size: int, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """The set's images resized to ``size``, normalised, in batches."""
    for start in range(0, len(data), batch_size):
        yield to_tensor(data[start : start + batch_size].load_images(size), device)


def _symmetric_index(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``radius`` with half-sample symmetry."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of ``[N, H, W]`` maps, as ``scipy.ndimage.gaussian_filter``.

    Separable kernel of radius ``int(4 * sigma + 0.5)``, boundary mode "reflect"
    (half-sample symmetric), so results match scipy's defaults to float precision.
    """
    if sigma <= 0:
        return maps
    radius = int(4 * sigma + 0.5)
    xs = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-(xs**2) / (2 * sigma**2))
    k = k / k.sum()
    h, w = maps.shape[-2:]
    x = maps[:, None]
    x = x[..., _symmetric_index(w, radius, maps.device)]
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = x[..., _symmetric_index(h, radius, maps.device), :]
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[:, 0]


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[N, h, w]`` maps to ``size``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    out = F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)
    return out[:, 0]


def resolve_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (upstream code uses them)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
