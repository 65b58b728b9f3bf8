"""PatchCore, upstream source: drives vendor/patchcore (amazon-science/patchcore-inspection,
a package under ``src/``) unmodified, from outside.

How: ``src/`` goes on ``sys.path`` and its ``patchcore.patchcore.PatchCore`` is built with our
config through its own ``load(...)``: our backbone object (built by adapters.common with the
same seed / weights as the native source, instead of its ``backbones.load`` which always
downloads ImageNet weights), its ``ApproximateGreedyCoresetSampler`` (10 starting points,
projection to ``coreset_projection_dim``) and its ``FaissNN`` (GPU index only on CUDA).
Images come from our equivalent loader (``adapters.common.batches``: resize to
``image_size`` and ImageNet normalisation, no centre crop) as tensors, which its ``fit`` and
``_predict`` accept directly. Its global RNG use (numpy start points, torch projection
init) is seeded from ``seed`` before fitting. Its maps are at ``image_size``, smoothed with
scipy's Gaussian filter (sigma 4), as upstream.

extract_features: its ``_embed`` patch features minus the nearest entry of its scorer's
memory bank (``anomaly_scorer.detection_features``), in absolute value.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from adapters.common import seed_everything, upstream_modules
from adapters.common.engine import EngineBase
from adapters.common.patches import upstream_embedder_args
from orchestrator.data.types import SampleSet


def _modules(checkout: Path):
    mods = upstream_modules(
        Path(checkout) / "src",
        ["patchcore.patchcore", "patchcore.sampler", "patchcore.common"],
        package=True,
    )
    return mods["patchcore.patchcore"], mods["patchcore.sampler"], mods["patchcore.common"]


class UpstreamPatchCore(EngineBase):
    """The upstream engine behind ``adapters.patchcore.PatchCore``."""

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        super().__init__(config, device, checkout)
        c = config
        pc_mod, sampler_mod, common_mod = _modules(checkout)
        self.common = common_mod
        embedder_args = upstream_embedder_args(c, device)
        seed_everything(int(c["seed"]))
        if float(c["coreset_percentage"]) >= 1.0:
            sampler = sampler_mod.IdentitySampler()
        else:
            sampler = sampler_mod.ApproximateGreedyCoresetSampler(
                float(c["coreset_percentage"]),
                device,
                dimension_to_project_features_to=int(c["coreset_projection_dim"]),
            )
        self.model = pc_mod.PatchCore(device)
        self.model.load(
            **embedder_args,
            anomaly_score_num_nn=int(c["anomaly_scorer_num_nn"]),
            featuresampler=sampler,
            nn_method=self._nn(),
        )

    def _nn(self):
        workers = max(1, min(4, os.cpu_count() or 1))
        return self.common.FaissNN(self.device.type == "cuda", workers)

    def fit(self, train: SampleSet) -> None:
        seed_everything(int(self.config["seed"]))
        self.model.fit(list(self.batches(train)))

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        scores, maps = [], []
        for x in self.batches(test):
            s, m = self.model._predict(x)
            scores.extend(float(v) for v in s)
            maps.extend(np.asarray(v, dtype=np.float32) for v in m)
        return np.asarray(scores), torch.from_numpy(np.stack(maps))

    def features(self, images: SampleSet) -> np.ndarray:
        bank = self.model.anomaly_scorer.detection_features
        out = []
        for x in self.batches(images):
            with torch.no_grad():
                feats, shapes = self.model._embed(x, provide_patch_shapes=True)
            q = np.ascontiguousarray(np.asarray(feats), dtype=np.float32)
            _, idx = self.model.anomaly_scorer.nn_method.run(1, q)
            h, w = shapes[0]
            diff = np.abs(q - bank[idx[:, 0]]).reshape(len(x), h, w, -1)
            out.append(diff.transpose(0, 3, 1, 2))
        return np.concatenate(out)

    def state(self) -> dict[str, np.ndarray]:
        return {"memory_bank": np.asarray(self.model.anomaly_scorer.detection_features)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        bank = np.ascontiguousarray(state["memory_bank"], dtype=np.float32)
        self.model.anomaly_scorer.fit(detection_features=[bank])
