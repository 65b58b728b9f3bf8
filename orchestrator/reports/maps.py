"""Anomaly maps written as the official MVTec LOCO evaluation reads them:
``<root>/<category>/test/<defect type>/<image id>.tiff``, one float32 map per image at the
image's size (``orchestrate evaluate --maps <root>``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def official_map_path(root: Path, category: str, defect_type: str, image_id: str) -> Path:
    return Path(root) / category / "test" / defect_type / f"{image_id}.tiff"


def write_map(path: Path, anomaly_map: np.ndarray) -> None:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(anomaly_map, dtype=np.float32))


def write_official_maps(root: Path, test, maps: np.ndarray) -> None:
    """Every test sample's map, resized to its image's own size when the set was evaluated
    at another."""
    import torch

    from adapters.common.backbone import upsample

    for sample, m in zip(test, maps, strict=True):
        size = sample.native_size()
        if tuple(m.shape) != tuple(size):  # bilinear, as the methods upsample their maps
            m = upsample(torch.from_numpy(np.asarray(m, np.float32))[None], size)[0].numpy()
        write_map(official_map_path(root, test.category, sample.subset, sample.image_id), m)
