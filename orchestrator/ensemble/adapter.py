"""FeatureEnsemble: the thesis' feature-level ensemble network behind the Adapter contract.

fit: members (built from the registry, or handed in already fitted with :meth:`use_members`)
-> ``extract_features`` on the training images -> transformation block fitted on those
features -> scaled fused patch features -> discriminator trained against Gaussian-noise fakes
for a fixed number of epochs. predict: the same path on test images; patch scores ``-D``
reshaped to maps, bilinearly upsampled to the evaluation size and Gaussian-smoothed; the image
score is the maximum patch score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from adapters.base import Adapter, FeatureMaps, Predictions, Resources
from adapters.training import preserved_training
from orchestrator.data.types import SampleSet
from orchestrator.ensemble.config import DEFAULT_CONFIG
from orchestrator.ensemble.network import EnsembleNet, score_patches, train_network
from orchestrator.ensemble.transform import make_transform, patches
from orchestrator.errors import UserError


def _import(path: str) -> type[Adapter]:
    from orchestrator.registry import import_adapter

    return import_adapter(path)


class FeatureEnsemble(Adapter):
    name = "feature_ensemble"
    default_resources = Resources(cpu=2, gpu=0, memory_gb=8)
    sources = ("native",)
    default_config: ClassVar[dict[str, Any]] = DEFAULT_CONFIG

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        self.members: list[Adapter] = []

    # --- members -----------------------------------------------------------------------
    def use_members(self, members: list[Adapter]) -> FeatureEnsemble:
        """Hand in member adapters (fitted ones are not refitted)."""
        self.members = list(members)
        return self

    def build_members(self) -> list[Adapter]:
        from orchestrator.registry import load_registry

        registry = load_registry(self.config.get("registry"))
        out = []
        for name in self.config["members"]:
            entry = registry.get(name)
            overrides = dict(self.config.get("member_overrides", {}).get(name, {}))
            for key in ("pretrained", "image_size"):
                if self.config.get(key) is not None and key in entry.params:
                    overrides.setdefault(key, self.config[key])
            out.append(
                registry.build(
                    name,
                    overrides,
                    device=self.device,
                    source=self.config.get("member_source", "auto"),
                    profile=self.config.get("member_profile", "paper"),
                )
            )
        return out

    def _member_features(self, data: SampleSet) -> list[np.ndarray]:
        return [m.extract_features(data).features for m in self.members]

    # --- the network -------------------------------------------------------------------
    def _projection_flags(self) -> list[bool]:
        p = self.config.get("projection", False)
        n = len(self.transform_.shares)
        if isinstance(p, list | tuple):
            if len(p) != n:
                raise UserError(f"projection: {len(p)} flags for {n} blocks")
            return [bool(v) for v in p]
        return [bool(p)] * n

    def _fused(self, data: SampleSet) -> np.ndarray:
        fused = self.transform_.transform(self._member_features(data))
        return fused / self.scale_

    def _fit(self, train: SampleSet) -> None:
        if not self.members:
            self.members = self.build_members()
        for m in self.members:
            m.require("features")
            if not m.fitted:
                m.fit(train)
        seed = int(self.config.get("seed", 0))
        torch.manual_seed(seed)
        self.transform_ = make_transform(
            self.config.get("fusion", "ift"),
            self.config.get("components"),
            self.config.get("variance"),
            seed,
        ).fit(self._member_features(train))
        raw = self.transform_.transform(self._member_features(train))
        self.scale_ = float(raw.std(axis=(0, 2, 3)).mean()) if self.config.get("scale") else 1.0
        self.scale_ = self.scale_ if self.scale_ > 0 else 1.0
        self.net_ = EnsembleNet(
            self.transform_.shares, self._projection_flags(), int(self.config["hidden"])
        )
        self.losses_ = train_network(
            self.net_,
            patches(raw / self.scale_),
            epochs=int(self.config["epochs"]),
            lr=float(self.config["lr"]),
            proj_lr=float(self.config["proj_lr"]),
            noise_std=float(self.config["noise_std"]),
            margin=float(self.config["margin"]),
            batch_size=int(self.config["batch_size"]),
            seed=seed,
            device=self.device,
            on_epoch=self._epoch_end if self.monitor is not None else None,
        )

    def _epoch_end(self, epoch: int, epochs: int, loss: float) -> None:
        guard = lambda: preserved_training([self.net_])  # noqa: E731
        self.monitor.epoch_end(epoch, epochs, loss, guard)

    def _predict(self, test: SampleSet) -> Predictions:
        fused = self._fused(test)
        n, _, h, w = fused.shape
        scores = score_patches(self.net_, patches(fused), self.device).reshape(n, h, w)
        maps = F.interpolate(
            torch.from_numpy(scores.astype(np.float32))[:, None],
            size=tuple(test.eval_size),
            mode="bilinear",
            align_corners=False,
        )[:, 0].numpy()
        sigma = float(self.config.get("smoothing_sigma", 0) or 0)
        if sigma > 0:
            maps = gaussian_filter(maps, sigma=(0, sigma, sigma)).astype(np.float32)
        return Predictions(scores.reshape(n, -1).max(axis=1), maps)

    @torch.no_grad()
    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        fused = self._fused(images)
        n, c, h, w = fused.shape
        x = torch.from_numpy(patches(fused).astype(np.float32))
        proj = self.net_.projection.eval()(x).numpy()
        return FeatureMaps(proj.reshape(n, h, w, c).transpose(0, 3, 1, 2), name="fused")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["members"] = [m.describe() for m in self.members]
        return out

    # --- persistence -------------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        for i, m in enumerate(self.members):
            m.save(directory / "members" / f"{i}")
        np.savez(directory / "transform.npz", **self.transform_.state())
        torch.save(self.net_.state_dict(), directory / "network.pt")
        meta = {
            "fusion": self.transform_.kind,
            "shares": self.transform_.shares,
            "scale": self.scale_,
            "projection": self._projection_flags(),
        }
        (directory / "ensemble.json").write_text(json.dumps(meta))

    def _load_state(self, directory: Path) -> None:
        self.members = []
        for i in range(len(self.config["members"])):
            d = directory / "members" / f"{i}"
            meta = json.loads((d / "adapter.json").read_text())
            self.members.append(_import(meta["adapter"]).load(d, device=self.device))
        meta = json.loads((directory / "ensemble.json").read_text())
        self.transform_ = make_transform(meta["fusion"])
        self.transform_.load_state(dict(np.load(directory / "transform.npz")))
        self.scale_ = float(meta["scale"])
        self.net_ = EnsembleNet(meta["shares"], meta["projection"], int(self.config["hidden"]))
        self.net_.load_state_dict(torch.load(directory / "network.pt", weights_only=True))
        self.net_.eval()
