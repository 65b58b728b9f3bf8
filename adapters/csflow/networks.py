"""CS-Flow's networks (Rudolph et al., WACV 2022): a cross-scale, fully convolutional flow.

Written from the paper; the engine that trains it is adapters.csflow.native (the scores, maps
and the extractor's cut-off here serve both sources). Three feature maps of one image (the
image at full, half and quarter resolution through the same frozen backbone) are transformed
jointly. Each coupling block splits the channels of every scale in two halves; a cross-scale
subnetwork reads the first halves of all three scales (convolutions per scale plus strided /
upsampling convolutions between neighbouring scales) and predicts a scale ``s`` and shift
``t`` for the second halves, then the roles swap. Scales are soft-clamped,
``clamp * 2 / pi * atan(s / clamp)``, so the log-determinant stays bounded. A fixed random
channel permutation precedes each block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CrossScaleNet(nn.Module):
    """Subnetwork of one coupling half: three scales in, three (s, t) maps out."""

    def __init__(self, c_in: int, c_out: int, hidden: int, kernel: int, slope: float = 0.1):
        super().__init__()
        pad = kernel // 2

        def conv(ci: int, co: int, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(ci, co, kernel, stride=stride, padding=pad)

        self.inner = nn.ModuleList(conv(c_in, hidden) for _ in range(3))
        self.outer = nn.ModuleList(conv(hidden, c_out) for _ in range(3))
        self.up = nn.ModuleList(conv(hidden, c_out) for _ in range(2))  # scale k+1 -> k
        self.down = nn.ModuleList(conv(hidden, c_out, stride=2) for _ in range(2))  # k -> k+1
        # zero-initialised output gains: every block starts as the identity map
        self.gain = nn.Parameter(torch.zeros(3))
        self.slope = slope

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        hs = [F.leaky_relu(f(x), self.slope) for f, x in zip(self.inner, xs, strict=True)]
        out = [g(h) for g, h in zip(self.outer, hs, strict=True)]
        for k in range(2):
            finer = hs[k + 1]
            up = F.interpolate(finer, size=hs[k].shape[-2:], mode="bilinear", align_corners=False)
            out[k] = out[k] + self.up[k](up)
            down = self.down[k](hs[k])
            out[k + 1] = out[k + 1] + _fit(down, out[k + 1].shape[-2:])
        return [o * self.gain[i] for i, o in enumerate(out)]


def _fit(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Crop/pad a strided result to the next scale's size (odd sizes)."""
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=tuple(size), mode="nearest")


class CouplingBlock(nn.Module):
    """Permutation + two affine half-couplings shared across the three scales."""

    def __init__(self, channels: int, hidden: int, kernel: int, clamp: float, seed: int):
        super().__init__()
        self.c1 = channels // 2
        self.c2 = channels - self.c1
        self.clamp = clamp
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("perm", torch.randperm(channels, generator=g), persistent=True)
        self.net1 = CrossScaleNet(self.c2, 2 * self.c1, hidden, kernel)  # reads 2nd halves
        self.net2 = CrossScaleNet(self.c1, 2 * self.c2, hidden, kernel)  # reads new 1st halves

    def _log_scale(self, s: torch.Tensor) -> torch.Tensor:
        return self.clamp * (2 / math.pi) * torch.atan(s / self.clamp)

    def _affine(
        self, xs: list[torch.Tensor], r: list[torch.Tensor], logdet: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``x * exp(s) + t`` per scale, ``(s, t)`` the channel halves of ``r`` (``s``
        soft-clamped); ``logdet`` plus the log-scales' sums."""
        out = []
        for x, rk in zip(xs, r, strict=True):
            c = x.shape[1]
            ls = self._log_scale(rk[:, :c])
            out.append(x * torch.exp(ls) + rk[:, c:])
            logdet = logdet + ls.sum(dim=(1, 2, 3))
        return out, logdet

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        xs = [x[:, self.perm] for x in xs]
        a = [x[:, : self.c1] for x in xs]
        b = [x[:, self.c1 :] for x in xs]
        logdet = xs[0].new_zeros(xs[0].shape[0])
        new_a, logdet = self._affine(a, self.net1(b), logdet)
        new_b, logdet = self._affine(b, self.net2(new_a), logdet)
        return [torch.cat(p, dim=1) for p in zip(new_a, new_b, strict=True)], logdet


class CrossScaleFlow(nn.Module):
    """``n_blocks`` coupling blocks; ``forward`` returns per-scale latents and log|det J|."""

    def __init__(self, channels: int, n_blocks: int, hidden: int, kernels: list[int], clamp: float):
        super().__init__()
        if len(kernels) != n_blocks:
            kernels = [3] * (n_blocks - 1) + [5]
        self.blocks = nn.ModuleList(
            CouplingBlock(channels, hidden, int(kernels[k]), clamp, seed=k) for k in range(n_blocks)
        )

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        logdet = xs[0].new_zeros(xs[0].shape[0])
        for block in self.blocks:
            xs, ld = block(xs)
            logdet = logdet + ld
        return xs, logdet


def nll_loss(zs: list[torch.Tensor], logdet: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per dimension under a standard normal (constant dropped)."""
    flat = torch.cat([z.flatten(1) for z in zs], dim=1)
    return torch.mean(0.5 * (flat**2).sum(dim=1) - logdet) / flat.shape[1]


def image_scores(zs: list[torch.Tensor]) -> torch.Tensor:
    """Mean of ``z**2 / 2`` over all latent entries of all scales (as upstream)."""
    flat = torch.cat([z.flatten(1) for z in zs], dim=1)
    return (flat**2 / 2).mean(dim=1)


def anomaly_maps(zs: list[torch.Tensor]) -> torch.Tensor:
    """Channel mean of ``z**2`` at the largest scale, ``[N, h, w]`` (as upstream)."""
    return (zs[0] ** 2).mean(dim=1)


def last_stage_before_top(blocks) -> tuple[int, int]:
    """Index of the last block of the stage before the last in an efficientnet_pytorch
    block list, and its channels: block 35 of B5 (304 channels), as upstream's ``eff_ext``."""
    outs = [b._block_args.output_filters for b in blocks]
    stage = sorted(set(outs))[-2]
    return max(i for i, o in enumerate(outs) if o == stage), int(stage)


class ScaledExtractor(nn.Module):
    """A frozen extractor of the image at full, half and quarter size (nearest resize, as
    upstream's ``FeatureExtractor.forward``): subclasses set ``channels`` and ``embed``."""

    channels: int

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of one scale ``[N, channels, h, w]``."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        scaled = [x] + [F.interpolate(x, size=(h // 2**s, w // 2**s)) for s in (1, 2)]
        return [self.embed(xs) for xs in scaled]
