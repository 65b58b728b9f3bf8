"""The plugin's own implementation (the ``native`` source)."""

from __future__ import annotations

import numpy as np
import torch

from adapters.common.engine import EngineBase
from knn_plugin.features import patch_features
from orchestrator.data.types import SampleSet


class NativeKnnPatch(EngineBase):
    def fit(self, train: SampleSet) -> None:
        p = int(self.config["patch"])
        feats = [patch_features(x, p).reshape(-1, 3 * p * p) for x in self.batches(train)]
        self.bank = torch.cat(feats)  # every training patch (a fresh bank on every fit)

    def distances(self, data: SampleSet) -> torch.Tensor:
        """``[N, h, w]``: each patch's mean distance to its ``k`` nearest training patches."""
        p, k = int(self.config["patch"]), int(self.config["k"])
        out = []
        for x in self.batches(data):
            f = patch_features(x, p)
            d = torch.cdist(f.reshape(-1, f.shape[-1]), self.bank)
            out.append(d.topk(k, largest=False).values.mean(1).reshape(f.shape[:3]))
        return torch.cat(out)

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        maps = self.distances(test)
        return maps.flatten(1).amax(1).numpy(), maps

    def features(self, images: SampleSet) -> np.ndarray:
        return self.distances(images)[:, None].numpy()

    def state(self) -> dict[str, torch.Tensor]:
        return {"bank": self.bank}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.bank = state["bank"]
