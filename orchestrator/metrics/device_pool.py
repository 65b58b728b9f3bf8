"""Normal-pixel pools on a torch device (a GPU): the sort and the threshold counts of the exact
pixel curves in :mod:`orchestrator.metrics.curves`.

:class:`TorchSortedPool` has :class:`~orchestrator.metrics.curves.SortedPool`'s interface
(``len``, ``count_below``, ``+``), so ``au_spro``, ``spro_curve``, ``au_pro`` and
``pixel_auroc`` take either. Sorting and binary search of float32 values are exact, so both
pools give the same counts, hence the same curves and areas. Only the pools live on the
device: the regions' top-``s`` selection and the integration stay in numpy (a few values per
region). Not imported by ``orchestrator.metrics`` (it imports torch).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


class TorchSortedPool:
    """Scores of a set of pixels as sorted float32 tensors on ``device`` (one per group)."""

    def __init__(
        self, arrays: Iterable[np.ndarray | torch.Tensor] = (), device: str | torch.device = "cpu"
    ):
        self.device = torch.device(device)
        self.arrays: list[torch.Tensor] = []
        for a in arrays:
            self.add(a)

    def add(self, values: np.ndarray | torch.Tensor) -> TorchSortedPool:
        """Add a group of scores (moved to the device, flattened, sorted)."""
        t = torch.as_tensor(values).to(self.device, torch.float32).reshape(-1)
        if t.numel():
            self.arrays.append(torch.sort(t).values)
        return self

    def __add__(self, other: TorchSortedPool) -> TorchSortedPool:
        pool = TorchSortedPool(device=self.device)
        pool.arrays = self.arrays + other.arrays
        return pool

    def __len__(self) -> int:
        return sum(int(a.numel()) for a in self.arrays)

    def count_below(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ascending ``keys``: numbers of values ``< key`` and ``<= key`` (int64 each)."""
        k = torch.from_numpy(np.ascontiguousarray(keys, dtype=np.float32)).to(self.device)
        lt = torch.zeros(k.shape, dtype=torch.int64, device=self.device)
        le = torch.zeros_like(lt)
        for a in self.arrays:
            lt += torch.searchsorted(a, k, side="left")
            le += torch.searchsorted(a, k, side="right")
        return lt.cpu().numpy(), le.cpu().numpy()
