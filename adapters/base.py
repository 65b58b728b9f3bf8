"""The adapter contract every anomaly detection method implements.

An adapter is a small estimator in the spirit of scikit-learn::

    adapter = PatchCore(config, device="cpu", source="auto")
    adapter.fit(category.split("train"))
    preds = adapter.predict(category.split("test"))   # Predictions
    feats = adapter.extract_features(some_sample_set)  # FeatureMaps
    adapter.save(folder); again = PatchCore.load(folder)

The constructor takes the method's resolved config (registry defaults merged with user
overrides) and a torch device string; nothing is hidden in globals. ``capabilities``
and ``default_resources`` are class attributes, so the scheduler and the ensemble can
decide before instantiating anything.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from orchestrator.data.types import SampleSet
from orchestrator.errors import CapabilityError, NotFittedError, UserError

#: Names of capabilities an adapter may declare.
IMAGE_SCORE = "image_score"
ANOMALY_MAP = "anomaly_map"
FEATURES = "features"
ALL_CAPABILITIES = frozenset({IMAGE_SCORE, ANOMALY_MAP, FEATURES})

SOURCES = ("auto", "upstream", "native")


@dataclass(frozen=True)
class Resources:
    """What one trial of a method asks the scheduler for."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory_gb: float = 4.0


@dataclass(frozen=True)
class UpstreamState:
    """What an upstream source records about the checkout it imports (results are tagged with
    it): the folder, its actual HEAD and whether it is unmodified (None: no checkout there)."""

    checkout: Path
    commit: str | None
    clean: bool | None

    @classmethod
    def at(cls, checkout: str | Path) -> UpstreamState:
        """The state of the checkout folder ``checkout`` now."""
        from orchestrator.vendor import checkout_state_at

        state = checkout_state_at(Path(checkout))
        return cls(Path(checkout), state.head, state.clean if state.present else None)


@dataclass
class Predictions:
    """What ``predict`` returns.

    image_scores: float64 ``[N]``, higher = more anomalous.
    anomaly_maps: float32 ``[N, H, W]`` at the SampleSet's ``eval_size``.
    """

    image_scores: np.ndarray
    anomaly_maps: np.ndarray
    keys: list[str] = field(default_factory=list)  # Sample.key of each row

    def __post_init__(self) -> None:
        self.image_scores = np.asarray(self.image_scores, dtype=np.float64).reshape(-1)
        self.anomaly_maps = np.asarray(self.anomaly_maps, dtype=np.float32)
        if self.anomaly_maps.ndim != 3 or len(self.anomaly_maps) != len(self.image_scores):
            raise ValueError(
                f"anomaly_maps must be [N, H, W] with N={len(self.image_scores)}, "
                f"got {self.anomaly_maps.shape}"
            )


@dataclass
class FeatureMaps:
    """What ``extract_features`` returns: patch features ``[N, C, h, w]`` (float32)."""

    features: np.ndarray
    name: str = ""  # the cut-off point, e.g. "adapter" or "nn_difference"

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 4:
            raise ValueError(f"features must be [N, C, h, w], got {self.features.shape}")


class Adapter(ABC):
    """Base class of every method adapter.

    Subclasses set ``name``, ``capabilities``, ``default_resources`` and ``sources``
    (the sources they implement, a subset of ``("upstream", "native")``), and implement
    ``_fit``, ``_predict``, ``_extract_features``, ``_save_state`` and ``_load_state``.
    The public methods here add the checks the contract promises (predict before fit,
    missing capability) so subclasses don't repeat them.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    default_resources: ClassVar[Resources] = Resources()
    sources: ClassVar[tuple[str, ...]] = ("native",)
    #: Defaults for adapters registered without params (e.g. through an entry point).
    default_config: ClassVar[dict[str, Any]] = {}
    #: profile -> a caveat printed when a survey starts with that profile.
    profile_notes: ClassVar[dict[str, str]] = {}
    #: True: the ``backbone`` / ``pretrained`` / ``weights_path`` keys of the config name a
    #: backbone built through adapters.common.weights (tagged, checked before any trial).
    uses_weights_resolver: ClassVar[bool] = False

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        device: str = "cpu",
        source: str = "native",
    ) -> None:
        if source not in self.sources:
            raise UserError(
                f"{self.name or type(self).__name__}: source {source!r} not available "
                f"(this adapter implements: {', '.join(self.sources)}); resolve 'auto' with "
                "orchestrator.registry before constructing"
            )
        self.config: dict[str, Any] = dict(config or {})
        self.device = device
        self.source = source
        self.upstream_commit: str | None = None  # set by upstream sources
        self.vendor_clean: bool | None = None  # upstream sources: checkout unmodified?
        #: the upstream checkout (set from the registry entry; default vendor/<name>)
        self.checkout: Path | None = None
        #: set before ``fit`` for training curves (adapters.training.TrainingMonitor); a
        #: method that trains reports each epoch to it, others ignore it
        self.monitor: Any = None
        self.fitted = False

    @property
    def checkout_dir(self) -> Path:
        """The folder of this method's upstream checkout (the registry entry's, by default
        ``<vendor dir>/<name>``)."""
        from orchestrator.paths import vendor_dir

        return Path(self.checkout) if self.checkout else vendor_dir() / self.name

    def record_upstream(self, state: UpstreamState) -> None:
        """Tag this adapter's results with an upstream checkout's HEAD and cleanliness."""
        self.upstream_commit, self.vendor_clean = state.commit, state.clean

    def record_checkout(self) -> Path:
        """Record the state of ``checkout_dir`` (``record_upstream``) and return the folder: for
        upstream sources that import the checkout themselves (EngineAdapter's engines record
        their own, ``Engine.upstream_state``)."""
        state = UpstreamState.at(self.checkout_dir)
        self.record_upstream(state)
        return state.checkout

    # --- public contract -------------------------------------------------------------
    def fit(self, train: SampleSet) -> Adapter:
        """Learn from normal images only. Returns self."""
        if len(train) == 0:
            raise ValueError(f"{self.name}: empty training set")
        self._fit(train)
        self.fitted = True
        return self

    def predict(self, test: SampleSet) -> Predictions:
        """Image scores ``[N]`` and anomaly maps ``[N, H, W]`` at ``test.eval_size``."""
        self._check_fitted("predict")
        preds = self._predict(test)
        if preds.anomaly_maps.shape[1:] != tuple(test.eval_size):
            raise ValueError(
                f"{self.name}: maps are {preds.anomaly_maps.shape[1:]}, "
                f"evaluation size is {tuple(test.eval_size)}"
            )
        if not preds.keys:
            preds.keys = [s.key for s in test]
        return preds

    def scores_while_training(self, data: SampleSet) -> np.ndarray:
        """Image scores of the model as trained so far, for a training monitor's probe
        (plotting only; called inside the loop's guard, adapters.training)."""
        return self._predict(data).image_scores

    def extract_features(self, images: SampleSet) -> FeatureMaps:
        """Patch features ``[N, C, h, w]`` at the method's cut-off point."""
        self.require(FEATURES)
        self._check_fitted("extract_features")
        return self._extract_features(images)

    def save(self, directory: str | Path) -> Path:
        """Write the fitted state to ``directory`` (created); ``load`` reads it back."""
        self._check_fitted("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "adapter": f"{type(self).__module__}:{type(self).__qualname__}",
            "name": self.name,
            "config": self.config,
            "source": self.source,
            "upstream_commit": self.upstream_commit,
            # the checkout's folder under the vendor directory (the registry entry's, which
            # need not be the class' name): load reads the same one
            "checkout": self.checkout_dir.name if self.source == "upstream" else None,
        }
        (directory / "adapter.json").write_text(json.dumps(meta, indent=2, default=str))
        self._save_state(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Adapter:
        """Rebuild a fitted adapter saved with ``save``."""
        directory = Path(directory)
        meta = json.loads((directory / "adapter.json").read_text())
        obj = cls(meta["config"], device=device, source=meta["source"])
        obj.upstream_commit = meta.get("upstream_commit")
        if meta.get("checkout"):
            from orchestrator.paths import vendor_dir

            obj.checkout = vendor_dir() / meta["checkout"]
        obj._load_state(directory)
        obj.fitted = True
        return obj

    @classmethod
    def supports(cls, capability: str) -> bool:
        return capability in cls.capabilities

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise CapabilityError(
                f"{self.name or type(self).__name__} does not provide {capability!r} "
                f"(capabilities: {', '.join(sorted(self.capabilities))})"
            )

    def describe(self) -> dict[str, Any]:
        """What every result is tagged with: method, source used, upstream commit."""
        return {"method": self.name, "source": self.source, "upstream_commit": self.upstream_commit}

    @classmethod
    def backbones(
        cls, config: Mapping[str, Any], source: str
    ) -> list[tuple[str, bool, str | None, int]]:
        """``(name, pretrained, weights_path, seed)`` of every backbone the method builds from
        ``config`` with ``source`` (default: the ``backbone`` key of an adapter that sets
        ``uses_weights_resolver``)."""
        if not cls.uses_weights_resolver or "backbone" not in config:
            return []
        return [
            (
                str(config["backbone"]),
                bool(config.get("pretrained")),
                config.get("weights_path") or None,
                int(config.get("seed", 0)),
            )
        ]

    @classmethod
    def weights_tags(
        cls, config: Mapping[str, Any], source: str, verify: bool = False
    ) -> dict[str, str]:
        """Where the backbone weights come from: ``weights_source`` (weights_path, hub_cache,
        package:<name>, download, random (seed N), or none) and ``weights_sha256``. Raises
        UserError (one line) when ``pretrained`` weights cannot be found; with ``verify``, also
        when a ``weights_path`` file is unreadable or of another architecture."""
        from adapters.common.weights import backbone_weights

        used = [backbone_weights(*b) for b in cls.backbones(config, source)]
        if verify:
            from adapters.common.weights import verify_weights

            for b in cls.backbones(config, source):
                if b[2]:  # a user's weights_path: does it fit the architecture?
                    verify_weights(b[0], b[2])
        if not used:
            return {"weights_backbone": "", "weights_source": "none", "weights_sha256": ""}
        return {
            "weights_backbone": ";".join(w.backbone for w in used),
            "weights_source": ";".join(w.source for w in used),
            "weights_sha256": ";".join(w.sha256 for w in used),
        }

    # --- to implement ------------------------------------------------------------------
    @abstractmethod
    def _fit(self, train: SampleSet) -> None: ...

    @abstractmethod
    def _predict(self, test: SampleSet) -> Predictions: ...

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        raise CapabilityError(f"{self.name}: extract_features is not implemented")

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...

    # --- helpers -----------------------------------------------------------------------
    def _check_fitted(self, what: str) -> None:
        if not self.fitted:
            raise NotFittedError(f"{self.name or type(self).__name__}: call fit() before {what}()")
