"""Adapters whose work is done by a per-source engine (the native or the upstream code).

An engine has ``fit(train)``, ``predict(test) -> (scores, maps at any size)``,
``features(images) -> [N, C, h, w]``, ``state()`` and ``set_state(state)``. The adapter picks
the engine of its source on first use and adds what the contract needs around it (maps
resized to the evaluation size, the checkout's HEAD and state recorded, the engine's
state saved as ``<name>.pt``: tensors only, loaded with ``weights_only``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar

import torch

from adapters.base import Adapter, FeatureMaps, Predictions
from adapters.common.backbone import resolve_device, upsample
from orchestrator.data.types import SampleSet


class EngineAdapter(Adapter):
    #: "module:Class" of the native engine and of the upstream engine; the upstream engine
    #: is built with a third argument, the checkout folder (``Adapter.checkout_dir``).
    native_engine: ClassVar[str] = ""
    upstream_engine: ClassVar[str] = ""
    #: The name of the cut-off point ``extract_features`` returns.
    feature_name: ClassVar[str] = ""

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        self.torch_device = resolve_device(device)
        self._engine = None

    @property
    def engine(self):
        """The source's implementation (built on first use)."""
        if self._engine is None:
            path = self.upstream_engine if self.source == "upstream" else self.native_engine
            module_name, _, cls_name = path.partition(":")
            engine_cls = getattr(importlib.import_module(module_name), cls_name)
            if self.source == "upstream":  # the checkout the registry entry names
                self._engine = engine_cls(self.config, self.torch_device, self.record_checkout())
            else:
                self._engine = engine_cls(self.config, self.torch_device)
        return self._engine

    def _fit(self, train: SampleSet) -> None:
        self.engine.fit(train)

    def _predict(self, test: SampleSet) -> Predictions:
        scores, maps = self.engine.predict(test)
        return Predictions(scores, upsample(maps, test.eval_size).numpy())

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        return FeatureMaps(self.engine.features(images), name=self.feature_name)

    def _save_state(self, directory: Path) -> None:
        torch.save(self.engine.state(), directory / f"{self.name}.pt")

    def _load_state(self, directory: Path) -> None:
        path = directory / f"{self.name}.pt"
        self.engine.set_state(torch.load(path, map_location="cpu", weights_only=True))
