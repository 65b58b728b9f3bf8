"""PixelStats: a per-pixel Gaussian baseline, the project's reference adapter.

Each training image is resized to a small grid; the per-pixel, per-channel mean and
standard deviation of the normal images form the model. A test image's anomaly map is the
mean squared z-score over channels, Gaussian-smoothed and bilinearly upsampled to the
evaluation size; its score is the map's maximum. It needs no training loop and runs in
milliseconds, which makes it the adapter of choice for testing the machinery (and a sanity
baseline: aligned parts with a fixed pose are where it works).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adapters.base import Adapter, FeatureMaps, Predictions, Resources
from orchestrator.data.types import SampleSet


class PixelStats(Adapter):
    name = "pixelstats"
    default_resources = Resources(cpu=1, gpu=0, memory_gb=1)
    sources = ("native",)
    default_config: ClassVar[dict[str, Any]] = {
        "grid": [32, 32],
        "smoothing_sigma": 1.0,
        "eps": 0.01,
        "seed": 0,
    }

    def _grid(self) -> tuple[int, int]:
        g = self.config.get("grid", [32, 32])
        return (int(g), int(g)) if isinstance(g, int | float) else (int(g[0]), int(g[1]))

    def _images(self, data: SampleSet) -> np.ndarray:
        return data.load_images(self._grid()).astype(np.float32) / 255.0  # [N, h, w, 3]

    def _fit(self, train: SampleSet) -> None:
        x = self._images(train)
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0) + float(self.config.get("eps", 0.01))

    def _z(self, data: SampleSet) -> np.ndarray:
        return ((self._images(data) - self.mean_) / self.std_).transpose(0, 3, 1, 2)

    def _predict(self, test: SampleSet) -> Predictions:
        import torch  # here, not at import: the registry imports this class (stays light)
        import torch.nn.functional as F
        from scipy.ndimage import gaussian_filter

        z2 = (self._z(test) ** 2).mean(axis=1)  # [N, h, w]
        sigma = float(self.config.get("smoothing_sigma", 1.0))
        if sigma > 0:
            z2 = gaussian_filter(z2, sigma=(0, sigma, sigma))
        maps = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(z2))[:, None],
            size=tuple(test.eval_size),
            mode="bilinear",
            align_corners=False,
        )[:, 0].numpy()
        return Predictions(z2.reshape(len(z2), -1).max(axis=1), maps)

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        return FeatureMaps(self._z(images), name="z_scores")

    def _save_state(self, directory: Path) -> None:
        np.savez(directory / "pixelstats.npz", mean=self.mean_, std=self.std_)

    def _load_state(self, directory: Path) -> None:
        data = np.load(directory / "pixelstats.npz")
        self.mean_, self.std_ = data["mean"], data["std"]
