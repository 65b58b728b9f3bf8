"""PatchCore (Roth et al., CVPR 2022) behind the adapter contract.

Two sources with one config: ``native`` (adapters.patchcore.native, the project's own code) and
``upstream`` (adapters.patchcore.upstream, drives the upstream checkout unmodified). Both get
the same images: resized to ``image_size`` (no centre crop, so maps cover the whole image),
ImageNet-normalised, and the same backbone weights (built from ``backbone``,
``pretrained``/``weights_path`` and ``seed``). The map is computed at ``image_size`` and
bilinearly resized to the evaluation size.

Image score: the maximum patch distance (upstream's default); ``reweight: true`` applies the
paper's re-weighting (native source only). extract_features: ``|m_test - nn(m_test)|``, each
test patch feature minus its nearest memory-bank entry, in absolute value, ``[N, D, h, w]``
(thesis 4.3.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adapters.common.config import embedder_defaults
from adapters.common.engine import EngineAdapter


class PatchCore(EngineAdapter):
    #: registry.yaml's params of this method, key for key (tests/test_registry_defaults.py)
    default_config: ClassVar[dict[str, Any]] = {
        **embedder_defaults(1024),
        "coreset_percentage": 0.1,
        "coreset_projection_dim": 128,
        "anomaly_scorer_num_nn": 1,
        "reweight": False,
        "reweight_neighbours": 3,
        "image_size": 224,
        "smoothing_sigma": 4.0,
        "batch_size": 8,
        "seed": 0,
    }
    name = "patchcore"
    feature_name = "nn_difference"

    def _save_state(self, directory: Path) -> None:
        np.savez(directory / "state.npz", **self.engine.state())

    def _load_state(self, directory: Path) -> None:
        with np.load(directory / "state.npz") as z:
            self.engine.set_state({k: z[k] for k in z.files})
