"""Networks, losses and noise of native Reverse Distillation++ (Tien et al., CVPR 2023),
written from the paper (the engine that trains them: adapters.revdist.native).

A frozen teacher CNN gives three feature maps (``layer1..3``). Multi-scale projection layers
(four 3x3 convs with instance norm and leaky ReLU per scale) map teacher features to a compact
space; the one-class bottleneck embedding (OCBE) strides the three projected maps down to the
coarsest one, fuses them and applies a residual block with stride 2; the student decoder
mirrors the teacher with transposed-conv upsampling blocks back to the three scales.

Losses: distillation = sum over scales of ``1 - cos`` between flattened teacher and student
maps; projection loss = (SSOT + 0.01 * reconstruction + 0.1 * contrast) / 1.11 with SSOT a
debiased Sinkhorn divergence between softmaxed projected features of a batch and a shuffled
copy, reconstruction = ``1 - cos`` between projections of noisy and clean features, contrast =
cosine embedding loss (margin 0.5) pushing noisy teacher features away from clean projections.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(ci: int, co: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(ci, co, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(co),
        nn.ReLU(inplace=True),
    )


class Projection(nn.Module):
    """C -> C/2 -> C/4 -> C/2 -> C, 3x3 convs, instance norm, leaky ReLU."""

    def __init__(self, c: int):
        super().__init__()
        dims = [c, c // 2, c // 4, c // 2, c]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.InstanceNorm2d(b), nn.LeakyReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiProjection(nn.Module):
    def __init__(self, channels: list[int]):
        super().__init__()
        self.proj = nn.ModuleList(Projection(c) for c in channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [p(f) for p, f in zip(self.proj, feats, strict=True)]


class Residual(nn.Module):
    def __init__(self, ci: int, co: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(ci, co, stride),
            nn.Conv2d(co, co, 3, padding=1, bias=False),
            nn.BatchNorm2d(co),
        )
        self.skip = nn.Sequential(
            nn.Conv2d(ci, co, 1, stride=stride, bias=False), nn.BatchNorm2d(co)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class OCBE(nn.Module):
    """One-class bottleneck: three scales -> one ``[N, 2 * C3, h/2, w/2]`` embedding."""

    def __init__(self, channels: list[int]):
        super().__init__()
        c1, c2, c3 = channels
        self.down1 = nn.Sequential(_conv_block(c1, c2, 2), _conv_block(c2, c3, 2))
        self.down2 = _conv_block(c2, c3, 2)
        self.fuse = Residual(3 * c3, 2 * c3, stride=2)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = feats
        a, b = self.down1(f1), self.down2(f2)
        size = f3.shape[-2:]
        a, b = F.interpolate(a, size=size), F.interpolate(b, size=size)  # odd sizes
        return self.fuse(torch.cat([a, b, f3], dim=1))


class Up(nn.Module):
    def __init__(self, ci: int, co: int):
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(ci, co, 2, stride=2, bias=False), nn.BatchNorm2d(co), nn.ReLU(True)
        )
        self.refine = Residual(co, co, stride=1)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        y = self.up(x)
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return self.refine(y)


class StudentDecoder(nn.Module):
    """Embedding -> student maps at the teacher's three scales (fine to coarse order)."""

    def __init__(self, channels: list[int]):
        super().__init__()
        c1, c2, c3 = channels
        self.up3 = Up(2 * c3, c3)
        self.up2 = Up(c3, c2)
        self.up1 = Up(c2, c1)

    def forward(self, z: torch.Tensor, sizes: list[torch.Size]) -> list[torch.Tensor]:
        d3 = self.up3(z, sizes[2])
        d2 = self.up2(d3, sizes[1])
        d1 = self.up1(d2, sizes[0])
        return [d1, d2, d3]


def distill_loss(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """Sum over scales of the mean ``1 - cos`` of per-image flattened maps."""
    return sum(
        (1 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()
        for t, s in zip(teacher, student, strict=True)
    )


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float = 0.05,
    scaling: float = 0.95,
    max_steps: int = 200,
) -> torch.Tensor:
    """Debiased entropic OT between uniform point clouds ``x [n, d]``, ``y [m, d]``.

    Cost ``|x - y|^2 / 2``; log-domain Sinkhorn with epsilon annealed from the cloud's
    diameter squared down to ``blur ** 2`` by ``scaling`` per step.
    """

    def ot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        cost = torch.cdist(a, b) ** 2 / 2
        n, m = cost.shape
        log_a = torch.full((n,), -math.log(n), device=a.device, dtype=a.dtype)
        log_b = torch.full((m,), -math.log(m), device=a.device, dtype=a.dtype)
        diam = float(cost.detach().max().clamp_min(blur**2))
        eps_list = [diam]
        while eps_list[-1] > blur**2 and len(eps_list) < max_steps:
            eps_list.append(max(eps_list[-1] * scaling**2, blur**2))
        f = torch.zeros(n, device=a.device, dtype=a.dtype)
        g = torch.zeros(m, device=a.device, dtype=a.dtype)
        for eps in eps_list:
            f = -eps * torch.logsumexp(log_b[None] + (g[None] - cost) / eps, dim=1)
            g = -eps * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / eps, dim=0)
        return f.mean() + g.mean()

    return ot(x, y) - 0.5 * ot(x, x) - 0.5 * ot(y, y)


def projection_loss(
    noisy_teacher: list[torch.Tensor],
    proj_noisy: list[torch.Tensor],
    proj_clean: list[torch.Tensor],
    generator: torch.Generator,
) -> torch.Tensor:
    """(SSOT + 0.01 * reconstruction + 0.1 * contrast) / 1.11, summed over scales."""
    n = proj_clean[0].shape[0]
    shuffle = torch.randperm(n, generator=generator)
    ssot = recon = contrast = 0.0
    for t_noisy, p_noisy, p_clean in zip(noisy_teacher, proj_noisy, proj_clean, strict=True):
        flat = p_clean.flatten(1)
        ssot = ssot + sinkhorn_divergence(flat.softmax(-1), flat[shuffle].softmax(-1))
        recon = recon + (1 - F.cosine_similarity(p_noisy, p_clean, dim=1)).mean()
        cos = F.cosine_similarity(t_noisy.flatten(1), flat, dim=1)
        contrast = contrast + (cos - 0.5).clamp_min(0).mean()
    return (ssot + 0.01 * recon + 0.1 * contrast) / 1.11


def noise_patches(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add one smooth noise patch per image (float ``[N, H, W, 3]`` in [0, 1]).

    The paper uses simplex noise; here: low-resolution Gaussian noise bilinearly upsampled,
    scaled to [-1, 1], times 0.2, in a random rectangle of side ``[10, size / 8)``.
    """
    out = images.copy()
    n, h, w, _ = images.shape
    for i in range(n):
        ph = int(rng.integers(min(10, h // 8 - 1), max(h // 8, 11)))
        pw = int(rng.integers(min(10, w // 8 - 1), max(w // 8, 11)))
        ph, pw = max(1, min(ph, h - 2)), max(1, min(pw, w - 2))
        y0 = int(rng.integers(1, h - ph))
        x0 = int(rng.integers(1, w - pw))
        low = torch.from_numpy(rng.standard_normal((1, 3, 4, 4)).astype(np.float32))
        patch = F.interpolate(low, size=(ph, pw), mode="bilinear", align_corners=False)[0]
        patch = patch / patch.abs().max().clamp_min(1e-6)
        out[i, y0 : y0 + ph, x0 : x0 + pw] += 0.2 * patch.permute(1, 2, 0).numpy()
    return out


def anomaly_map(
    teacher: list[torch.Tensor], student: list[torch.Tensor], size: tuple[int, int]
) -> torch.Tensor:
    """Sum over scales of per-pixel ``1 - cos``, bilinear (align_corners) to ``size``."""
    total = None
    for t, s in zip(teacher, student, strict=True):
        m = (1 - F.cosine_similarity(t, s, dim=1))[:, None]
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=True)[:, 0]
        total = m if total is None else total + m
    assert total is not None
    return total
