"""The conformance kit: passes a good adapter, names the check a broken one fails."""

import numpy as np
import pytest

from adapters.base import Predictions
from adapters.conformance import check_adapter
from adapters.pixelstats import PixelStats
from orchestrator.registry import load_registry


def test_pixelstats_passes():
    report = check_adapter(PixelStats)
    assert {"save-load", "deterministic", "obvious-anomaly-scores-higher"} <= set(report.passed)


def test_available_registry_adapters_pass():
    reg = load_registry()
    for name in reg.available(default_only=False):
        entry = reg.methods[name]
        cls = entry.adapter_class()
        cfg = entry.resolved_config("quick")
        check_adapter(cls, config=cfg)


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
