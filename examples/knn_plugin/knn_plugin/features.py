"""Patch features both sources share: non-overlapping ``patch`` x ``patch`` RGB patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_features(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[N, 3, H, W]`` images -> ``[N, h, w, 3 * patch**2]`` patch vectors."""
    n = x.shape[0]
    cols = F.unfold(x, kernel_size=patch, stride=patch)  # [N, 3 p^2, h w]
    h, w = x.shape[2] // patch, x.shape[3] // patch
    return cols.transpose(1, 2).reshape(n, h, w, -1)
