"""DRAEM's networks and losses, written from Zavrtanik et al., ICCV 2021 (native source).

- Reconstructive sub-network: an encoder-decoder without skip connections (five conv
  stages of two 3x3 conv-BN-ReLU, four 2x2 max-pools; the decoder mirrors it with bilinear
  upsampling), trained to restore the anomaly-free image (L2 + SSIM loss).
- Discriminative sub-network: a U-Net on ``concat(reconstruction, augmented image)`` (six
  encoder stages, five pools, skip connections) predicting a two-channel segmentation,
  trained with the focal loss (gamma 2) on the synthetic anomaly mask.

Both register their layers in upstream's order (``upstream.transfer_state`` relies on it).
Images enter the networks as RGB in ``[0, 1]`` (no ImageNet normalisation, as upstream).
The input size must be a multiple of 32 in both axes (five pools in the U-Net).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _double_conv(cin: int, cout: int, mid: int | None = None) -> nn.Sequential:
    mid = cout if mid is None else mid
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Stage(nn.Module):
    """One decoder stage: 2x upsampling conv, then a double conv (after an optional skip)."""

    def __init__(self, up: nn.Module, conv: nn.Module):
        super().__init__()
        self.up = up
        self.conv = conv


class Reconstructive(nn.Module):
    """Encoder-decoder restoring the anomaly-free image; ``base`` channels in the first stage."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base: int = 128):
        super().__init__()
        widths = [base, 2 * base, 4 * base, 8 * base, 8 * base]
        self.enc = nn.ModuleList()
        prev = in_ch
        for wd in widths:
            self.enc.append(_double_conv(prev, wd))
            prev = wd
        # decoder stages: (up in -> up out, double conv up out -> mid -> out)
        plan = [(8, 8, 8, 4), (4, 4, 4, 2), (2, 2, 2, 1), (1, 1, 1, 1)]
        self.dec = nn.ModuleList(
            _Stage(_up(a * base, b * base), _double_conv(b * base, d * base, m * base))
            for a, b, m, d in plan
        )
        self.head = nn.Conv2d(base, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
        for stage in self.dec:
            x = stage.conv(stage.up(x))
        return self.head(x)


class Discriminative(nn.Module):
    """U-Net segmenting ``concat(reconstruction, image)`` into normal / anomalous (logits)."""

    def __init__(self, in_ch: int = 6, out_ch: int = 2, base: int = 64):
        super().__init__()
        widths = [base, 2 * base, 4 * base, 8 * base, 8 * base, 8 * base]
        self.enc = nn.ModuleList()
        prev = in_ch
        for wd in widths:
            self.enc.append(_double_conv(prev, wd))
            prev = wd
        # decoder: upsample the deeper map, concatenate the skip, double conv
        plan = [(8, 8, 8), (8, 4, 8), (4, 2, 4), (2, 1, 2), (1, 1, 1)]  # (in, out, skip) x base
        self.dec = nn.ModuleList(
            _Stage(_up(a * base, b * base), _double_conv((b + s) * base, b * base))
            for a, b, s in plan
        )
        self.head = nn.Conv2d(base, out_ch, 3, padding=1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of the last decoder block (before the head) ``[N, base, H, W]``."""
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for stage in self.dec:
            x = stage.conv(torch.cat([stage.up(x), skips.pop()], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decode(x))


def init_weights(module: nn.Module) -> None:
    """DRAEM's initialisation: conv weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --- losses -------------------------------------------------------------------------------
def _gauss_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    xs = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(xs**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_loss(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, value_range: float = 1.0
) -> torch.Tensor:
    """``1 - SSIM(x, y)`` with an 11x11 Gaussian window (sigma 1.5), zero padding, mean over all."""
    c = x.shape[1]
    w = _gauss_window(window).to(x)[None, None].expand(c, 1, window, window)
    pad = window // 2

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=pad, groups=c)

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1.0 - s.mean()


def focal_loss(
    probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5
) -> torch.Tensor:
    """Focal loss on class probabilities ``[N, C, H, W]`` and an integer mask ``[N, 1, H, W]``.

    ``-(1 - p_t)^gamma log(p_t)`` averaged over pixels, with the one-hot target clamped to
    ``[smooth / (C - 1), 1 - smooth]`` and ``smooth`` added to ``p_t`` (as DRAEM trains).
    """
    c = probs.shape[1]
    onehot = F.one_hot(target[:, 0].long(), c).permute(0, 3, 1, 2).to(probs)
    onehot = onehot.clamp(smooth / (c - 1), 1.0 - smooth)
    pt = (onehot * probs).sum(dim=1) + smooth
    return (-((1 - pt) ** gamma) * pt.log()).mean()
