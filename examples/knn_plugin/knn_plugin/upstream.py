"""The ``upstream`` source: the pinned upstream repository's ``knn_reference.nearest``
(numpy), imported from the checkout unmodified; this file only feeds it the patches.

The checkout folder comes from the registry entry the adapter was built for
(``vendor/<registry name>`` unless the entry says ``checkout:``), never from a literal here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adapters.common.upstream import upstream_modules
from knn_plugin.features import patch_features
from knn_plugin.native import NativeKnnPatch


class UpstreamKnnPatch(NativeKnnPatch):
    def __init__(self, config, device, checkout: Path) -> None:
        super().__init__(config, device, checkout)  # records the checkout's HEAD and state
        self.reference = upstream_modules(checkout, ["knn_reference"])["knn_reference"]

    def distances(self, data) -> torch.Tensor:
        p, k = int(self.config["patch"]), int(self.config["k"])
        bank = self.bank.numpy().astype(np.float64)
        out = []
        for x in self.batches(data):
            f = patch_features(x, p)
            d = self.reference.nearest(bank, f.reshape(-1, f.shape[-1]).numpy(), k)
            out.append(torch.from_numpy(np.asarray(d, np.float32)).reshape(f.shape[:3]))
        return torch.cat(out)
