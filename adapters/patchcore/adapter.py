"""PatchCore (Roth et al., CVPR 2022) behind the adapter contract.

Two sources with one config: ``native`` (adapters.patchcore.native, the project's own code) and
``upstream`` (adapters.patchcore.upstream, drives vendor/patchcore unmodified). Both get the
same images: resized to ``image_size`` (no centre crop, so maps cover the whole image),
ImageNet-normalised, and the same backbone weights (built here from ``backbone``,
``pretrained``/``weights_path`` and ``seed``). The map is computed at ``image_size`` and
bilinearly resized to the evaluation size. ``resize`` is upstream's resize-before-crop size,
recorded for reference and unused here.

Image score: the maximum patch distance (upstream's default); ``reweight: true`` applies the
paper's re-weighting (native source only). extract_features: ``|m_test - nn(m_test)|``, each
test patch feature minus its nearest memory-bank entry, in absolute value, ``[N, D, h, w]``
(thesis 4.3.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adapters.base import Resources
from adapters.common.engine import EngineAdapter


class PatchCore(EngineAdapter):
    name = "patchcore"
    uses_weights_resolver = True
    native_engine = "adapters.patchcore.native:NativePatchCore"
    upstream_engine = "adapters.patchcore.upstream:UpstreamPatchCore"
    feature_name = "nn_difference"
    default_resources = Resources(cpu=2, gpu=1, memory_gb=16)
    sources = ("upstream", "native")
    default_config: ClassVar[dict[str, Any]] = {
        "backbone": "wide_resnet50_2",
        "layers": ["layer2", "layer3"],
        "pretrained": True,
        "weights_path": None,
        "pretrain_embed_dimension": 1024,
        "target_embed_dimension": 1024,
        "patchsize": 3,
        "coreset_percentage": 0.1,
        "coreset_projection_dim": 128,
        "anomaly_scorer_num_nn": 1,
        "reweight": False,
        "reweight_neighbours": 3,
        "resize": 256,
        "image_size": 224,
        "smoothing_sigma": 4.0,
        "batch_size": 8,
        "seed": 0,
    }

    def _save_state(self, directory: Path) -> None:
        np.savez(directory / "state.npz", **self.engine.state())

    def _load_state(self, directory: Path) -> None:
        with np.load(directory / "state.npz") as z:
            self.engine.set_state({k: z[k] for k in z.files})
