"""Approximate greedy coreset subsampling (PatchCore, section 3.2).

Greedy k-center selection on a random linear projection of the features (to
``projection_dim`` dims, Johnson-Lindenstrauss). The approximate variant avoids the full
M x M distance matrix: every feature starts with its mean distance to ``n_starts`` random
starting features; then the feature farthest from the selection is added repeatedly and
each feature keeps the distance to its nearest selected one. Memory O(M), time O(M * k).

Random draws: the projection matrix is uniform in ``+-1/sqrt(D)`` from a torch generator
seeded with ``seed`` (the default init of a bias-free ``[D -> projection_dim]`` linear
layer) and the starting points are ``numpy.random.RandomState(seed).choice(M, n_starts,
replace=False)``. Upstream draws the same numbers after seeding its global generators, so
both sources select the same coreset under one seed (the parity check relies on it).
"""

from __future__ import annotations

import numpy as np
import torch


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[len(a), len(b)]`` (expanded form, clamped at 0)."""
    d2 = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None]
    return d2.clamp(min=0).sqrt()


def approximate_greedy_coreset(
    features: torch.Tensor,
    fraction: float,
    projection_dim: int = 128,
    n_starts: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the selected ``int(fraction * M)`` rows (at least one) of ``[M, D]``."""
    m, d = features.shape
    if fraction >= 1.0:
        return np.arange(m)
    k = max(1, min(m, int(fraction * m)))
    x = features.float()
    with torch.no_grad():
        if projection_dim and projection_dim != d:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            bound = 1.0 / np.sqrt(d)
            proj = torch.empty(projection_dim, d).uniform_(-bound, bound, generator=gen)
            x = x @ proj.to(x.device).T
        starts = np.random.RandomState(seed).choice(m, min(n_starts, m), replace=False)
        min_dist = _pairwise(x, x[torch.as_tensor(starts, device=x.device)]).mean(1)
        sq = (x * x).sum(1)
        selected = np.empty(k, dtype=np.int64)
        for i in range(k):
            idx = int(torch.argmax(min_dist))
            selected[i] = idx
            d2 = sq - 2 * (x @ x[idx]) + sq[idx]
            min_dist = torch.minimum(min_dist, d2.clamp(min=0).sqrt())
    return selected
