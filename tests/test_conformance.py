"""The conformance kit: passes a good adapter, names the check a broken one fails."""

import numpy as np
import pytest
import yaml

from adapters.base import Predictions
from adapters.conformance import check_adapter
from adapters.pixelstats import PixelStats
from orchestrator.registry import BUILTIN_REGISTRY, load_registry


def test_pixelstats_passes():
    report = check_adapter(PixelStats)
    assert {"save-load", "deterministic", "obvious-anomaly-scores-higher"} <= set(report.passed)


def _registry_methods() -> list[str]:
    """Method names from registry.yaml, read without importing any adapter (collection time)."""
    return list(yaml.safe_load(BUILTIN_REGISTRY.read_text())["methods"])


@pytest.mark.heavy
@pytest.mark.parametrize("name", _registry_methods())
def test_registry_adapter_passes_with_quick_profile(name):
    """Each registered method, at its quick profile (minutes each: heavy; the adapters' own
    tests run the kit on tiny configs by default)."""
    entry = load_registry().methods[name]
    if not entry.available:
        pytest.skip(f"{name} not available ({entry.import_error or entry.status})")
    check_adapter(entry.adapter_class(), config=entry.resolved_config("quick"))


def test_pixelstats_passes_via_registry():
    reg = load_registry()
    assert "pixelstats" in reg.available(default_only=False)
    assert check_adapter(lambda: reg.build("pixelstats", profile="quick")).passed


class _WrongSize(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores, p.anomaly_maps[:, :10, :10])


class _Random(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        rng = np.random.default_rng()
        return Predictions(rng.random(len(test)), p.anomaly_maps)


class _Constant(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(np.zeros(len(test)), p.anomaly_maps)


class _NoLoad(PixelStats):
    def _load_state(self, directory):
        self.mean_ = self.mean_ if hasattr(self, "mean_") else 0.0
        self.std_ = 1.0


class _ThreeDimFeatures(PixelStats):
    def _extract_features(self, images):
        return super()._extract_features(images).features[:, 0]  # a bare [N, h, w] array


@pytest.mark.parametrize(
    "cls, check",
    [
        (_WrongSize, "maps-at-eval-size|evaluation size"),
        (_Constant, "obvious-anomaly-scores-higher"),
        (_NoLoad, "save-load-identical"),
        (_ThreeDimFeatures, "extract-features-shape"),
    ],
)
def test_broken_adapters_fail_the_named_check(cls, check):
    with pytest.raises((AssertionError, ValueError), match=check):
        check_adapter(cls)
