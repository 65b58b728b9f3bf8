"""Adapters whose work is done by a per-source engine (the native or the upstream code).

Every built-in method has one shape: ``adapters/<method>/adapter.py`` holds the adapter (its
config, docs and what is truly adapter-level), ``native.py`` the native engine
``Native<Adapter>`` and ``upstream.py`` the upstream engine ``Upstream<Adapter>``, both
implementing :class:`Engine`. The adapter builds the engine of its source on first use (the
upstream one with the checkout folder, ``Adapter.checkout_dir``, the registry entry's) and
adds what the contract needs around it: maps resized to the evaluation size, the checkout's
HEAD and state recorded (``Engine.upstream_state``), the engine's state saved as
``<name>.pt`` (tensors only, loaded with ``weights_only``).

torch is imported where it is used, not with this module: an adapter class then imports
without torch, so the registry and `orchestrate methods` read its attributes in a moment.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from adapters.base import Adapter, FeatureMaps, Predictions, Resources, UpstreamState
from adapters.training import TrainingMonitor, preserved_training
from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


class Engine(Protocol):
    """One source's implementation of a method, as an EngineAdapter drives it.

    Native engines are built as ``Engine(config, device)``, upstream engines as
    ``Engine(config, device, checkout)`` with the folder of the upstream checkout.
    """

    def fit(self, train: SampleSet) -> None:
        """Learn from the normal images ``train``."""
        ...

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        """Image scores ``[N]`` and anomaly maps ``[N, h, w]`` at any size (the adapter
        resizes them to the evaluation size)."""
        ...

    def features(self, images: SampleSet) -> np.ndarray:
        """Patch features ``[N, C, h, w]`` at the method's cut-off point."""
        ...

    def state(self) -> dict[str, Any]:
        """The fitted state: tensors, arrays and (nested) dicts of them."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state that ``state()`` returned (on a freshly built engine)."""
        ...

    def upstream_state(self) -> UpstreamState | None:
        """What an upstream engine recorded about the checkout it imports (folder, HEAD,
        clean); None for a native engine."""
        ...

    #: set by the adapter for the time of ``fit`` (adapters.training): the loop reports
    #: each epoch's loss to it; None: no curves
    monitor: TrainingMonitor | None


class EngineBase:
    """What the built-in engines share: config, device, the checkout record (upstream
    engines pass ``checkout``), the input size, ImageNet-normalised batches and the training
    curves' epoch reports (``epoch_end``)."""

    def __init__(
        self, config: dict[str, Any], device: torch.device, checkout: Path | None = None
    ) -> None:
        self.config = config
        self.device = device
        self._upstream = UpstreamState.at(checkout) if checkout is not None else None
        self.monitor: TrainingMonitor | None = None

    def epoch_end(self, epoch: int, total: int, loss: float | None, can_probe: bool = True) -> None:
        """Report epoch ``epoch`` (1-based) of ``total`` to the monitor, if any; a probe runs
        with every network of the engine in evaluation mode and the random generators kept
        (adapters.training.preserved_training)."""
        if self.monitor is not None:
            guard = lambda: preserved_training(self.networks())  # noqa: E731
            self.monitor.epoch_end(epoch, total, loss, guard, can_probe)

    def networks(self) -> list[nn.Module]:
        """The engine's torch modules (its attributes that are modules)."""
        from torch import nn

        return [v for v in vars(self).values() if isinstance(v, nn.Module)]

    def upstream_state(self) -> UpstreamState | None:
        return self._upstream

    @property
    def size(self) -> tuple[int, int]:
        """``image_size`` as ``(H, W)``."""
        from adapters.common.backbone import as_size

        return as_size(self.config["image_size"])

    def batches(self, data: SampleSet) -> Iterator[torch.Tensor]:
        """``data``'s images at ``image_size``, ImageNet-normalised, ``batch_size`` at a time."""
        from adapters.common.backbone import batches

        return batches(data, self.size, int(self.config["batch_size"]), self.device)


class NetworkEngine(EngineBase):
    """An engine whose fitted state is networks that ``build()`` makes afresh: the
    ``trained()`` modules are saved whole, the ``frozen()`` ones (backbones rebuilt from the
    config) by their batch-norm statistics only (adapters.common.bn_calibration)."""

    def build(self) -> None:
        """Fresh networks on the engine's device."""
        raise NotImplementedError

    def trained(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def frozen(self) -> dict[str, nn.Module]:
        return {}

    def networks(self) -> list[nn.Module]:
        return [*super().networks(), *self.trained().values(), *self.frozen().values()]

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        from adapters.common.bn_calibration import modules_state

        return modules_state(self.trained(), self.frozen())

    def set_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        from adapters.common.bn_calibration import load_modules_state

        self.build()
        load_modules_state(state, self.trained(), self.frozen())


class EngineAdapter(Adapter):
    """An adapter whose sources are engines (:class:`Engine`).

    ``native_engine`` / ``upstream_engine``: ``"module:Class"`` of each source's engine; left
    empty, they follow the one shape, ``<package>.native:Native<Class>`` and
    ``<package>.upstream:Upstream<Class>`` (e.g. ``adapters.csflow.native:NativeCSFlow``).
    ``feature_name``: the cut-off point ``extract_features`` returns. ``image_size_multiple``:
    ``image_size`` must be a multiple of it per axis (checked on construction). The engines
    build their backbones through adapters.common.weights (``uses_weights_resolver``).
    """

    native_engine: ClassVar[str] = ""
    upstream_engine: ClassVar[str] = ""
    feature_name: ClassVar[str] = ""
    image_size_multiple: ClassVar[int] = 1
    uses_weights_resolver: ClassVar[bool] = True
    sources: ClassVar[tuple[str, ...]] = ("upstream", "native")
    default_resources: ClassVar[Resources] = Resources(cpu=2, gpu=1, memory_gb=16)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        package = cls.__module__.rpartition(".")[0]
        for source in ("native", "upstream"):
            if not getattr(cls, f"{source}_engine"):  # a base class' engines are inherited
                setattr(
                    cls, f"{source}_engine", f"{package}.{source}:{source.title()}{cls.__name__}"
                )

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        from adapters.common.backbone import as_size, resolve_device

        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        k = self.image_size_multiple
        if k > 1:
            h, w = as_size(self.config["image_size"])
            if h % k or w % k:
                raise UserError(
                    f"{self.name}: image_size must be a multiple of {k} per axis, got {(h, w)}"
                )
        self.torch_device = resolve_device(str(device))
        self._engine: Engine | None = None

    @classmethod
    def engine_class(cls, source: str) -> type:
        """The engine class of ``source`` (imported)."""
        path = cls.upstream_engine if source == "upstream" else cls.native_engine
        module_name, _, cls_name = path.partition(":")
        return getattr(importlib.import_module(module_name), cls_name)

    @property
    def engine(self) -> Engine:
        """The source's implementation (built on first use)."""
        if self._engine is None:
            engine_cls = self.engine_class(self.source)
            if self.source == "upstream":  # the checkout the registry entry names
                engine = engine_cls(self.config, self.torch_device, self.checkout_dir)
                state = engine.upstream_state()
                if state is not None:
                    self.record_upstream(state)
            else:
                engine = engine_cls(self.config, self.torch_device)
            self._engine = engine
        return self._engine

    def _fit(self, train: SampleSet) -> None:
        engine = self.engine
        engine.monitor = self.monitor
        try:
            engine.fit(train)
        finally:
            engine.monitor = None

    def _predict(self, test: SampleSet) -> Predictions:
        from adapters.common.backbone import upsample

        scores, maps = self.engine.predict(test)
        return Predictions(scores, upsample(maps, test.eval_size).numpy())

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        return FeatureMaps(self.engine.features(images), name=self.feature_name)

    def _save_state(self, directory: Path) -> None:
        import torch

        torch.save(self.engine.state(), directory / f"{self.name}.pt")

    def _load_state(self, directory: Path) -> None:
        import torch

        path = directory / f"{self.name}.pt"
        self.engine.set_state(torch.load(path, map_location="cpu", weights_only=True))
