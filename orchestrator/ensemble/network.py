"""The ensemble's trainable part: optional per-member linear projection and a SimpleNet-style
discriminator trained against Gaussian-noise fake features with the truncated l1 loss.

Fused patch features ``x`` (one row per patch) are, per member block, optionally projected by
one linear layer; fakes are ``x + N(0, noise_std^2)``; the discriminator ``D`` (Linear ->
BatchNorm -> LeakyReLU -> Linear) is trained so that ``D(true) >= margin`` and
``D(fake) <= -margin``: ``loss = mean(max(0, margin - D(true))) + mean(max(0, margin + D(fake)))``.
A patch's anomaly score is ``-D(x)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def truncated_l1_loss(
    true_scores: torch.Tensor, fake_scores: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """SimpleNet's truncated l1 loss: zero once true >= margin and fake <= -margin."""
    true_loss = torch.clamp(margin - true_scores, min=0).mean()
    fake_loss = torch.clamp(margin + fake_scores, min=0).mean()
    return true_loss + fake_loss


class Discriminator(nn.Module):
    """Two-layer MLP patch discriminator (higher output = more normal)."""

    def __init__(self, in_dim: int, hidden: int = 1024) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)
        )
        self.head = nn.Linear(hidden, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(-1)


class BlockProjection(nn.Module):
    """One linear layer per member block of the fused channels (identity when disabled)."""

    def __init__(self, shares: Sequence[int], enabled: Sequence[bool]) -> None:
        super().__init__()
        self.shares = list(shares)
        self.layers = nn.ModuleList(
            [
                nn.Linear(k, k) if on else nn.Identity()
                for k, on in zip(shares, enabled, strict=True)
            ]
        )
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.shares, dim=-1)
        return torch.cat([f(p) for f, p in zip(self.layers, parts, strict=True)], dim=-1)


class EnsembleNet(nn.Module):
    """Projection + discriminator over fused patch features ``[P, C]``."""

    def __init__(
        self, shares: Sequence[int], projection: Sequence[bool], hidden: int = 1024
    ) -> None:
        super().__init__()
        self.projection = BlockProjection(shares, projection)
        self.discriminator = Discriminator(sum(shares), hidden)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score per patch: ``-D(proj(x))``."""
        return -self.discriminator(self.projection(x))


def train_network(
    net: EnsembleNet,
    patches: np.ndarray,
    epochs: int = 20,
    lr: float = 2e-4,
    proj_lr: float = 1e-4,
    noise_std: float = 0.3,
    margin: float = 0.5,
    batch_size: int = 4096,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Train on normal patch features ``[P, C]`` for a fixed number of epochs (no test-data
    selection). Returns the mean loss per epoch; ``on_epoch(epoch, epochs, loss)`` is called
    after each (1-based; the training curves, adapters.training)."""
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    net.to(device).train()
    params = [{"params": net.discriminator.parameters(), "lr": lr, "weight_decay": 1e-5}]
    proj_params = [p for p in net.projection.parameters()]
    if proj_params:
        params.append({"params": proj_params, "lr": proj_lr})
    opt = torch.optim.Adam(params)
    losses = []
    for e in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        total, batches = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            x = net.projection(x_all[idx].to(device))
            noise = torch.randn(x.shape, generator=gen).to(device) * noise_std
            scores = net.discriminator(torch.cat([x, x + noise]))
            loss = truncated_l1_loss(scores[: len(x)], scores[len(x) :], margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
        if on_epoch is not None:
            on_epoch(e + 1, epochs, losses[-1])
    net.eval()
    return losses


@torch.no_grad()
def score_patches(net: EnsembleNet, patches: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Anomaly score per patch row (eval mode)."""
    net.to(device).eval()
    out = []
    x_all = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    for i in range(0, len(x_all), 65536):
        out.append(net.score(x_all[i : i + 65536].to(device)).cpu())
    return torch.cat(out).numpy().astype(np.float64)
