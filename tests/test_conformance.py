"""The conformance kit: each named check of each built-in native method is its own case; a
broken adapter fails the check it should, and only it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml

from adapters.base import Predictions
from adapters.conformance import (
    CHECK_NAMES,
    blind_copy,
    check_adapter,
    conformance_checks,
    conformance_params,
    make_tiny_category,
    parametrize_checks,
)
from adapters.csflow import CSFlow
from adapters.draem import DRAEM
from adapters.patchcore import PatchCore
from adapters.pixelstats import PixelStats
from adapters.revdist import RevDist
from adapters.simplenet import SimpleNet
from orchestrator.registry import BUILTIN_REGISTRY, load_registry
from tests.test_csflow import TINY as CSFLOW_TINY
from tests.test_draem import TINY as DRAEM_TINY
from tests.test_patchcore import TINY as PATCHCORE_TINY
from tests.test_revdist import TINY as REVDIST_TINY
from tests.test_simplenet import TINY as SIMPLENET_TINY
from tests.upstream import need_checkout

# Tiny configs (random backbones): each method test file's own, changed where it takes more
# to localise the kit's bright squares (anomaly-region-scores-higher); every conformance run
# of a built-in method is here.
PATCHCORE = PATCHCORE_TINY
SIMPLENET = SIMPLENET_TINY | {"meta_epochs": 16}  # 8 are too few to localise the squares
CSFLOW = CSFLOW_TINY | {"image_size": 256}  # 128 gives a 4 x 4 map, too coarse
REVDIST = REVDIST_TINY | {"epochs": 5}  # 1 is too few to localise the squares

NATIVE_CASES = [
    *conformance_params(PatchCore, PATCHCORE),
    *conformance_params(SimpleNet, SIMPLENET),
    *conformance_params(CSFlow, CSFLOW),
    *conformance_params(RevDist, REVDIST),
    *conformance_params(DRAEM, DRAEM_TINY),  # ~25 s: three fits of 100 steps
]


#: method -> the Python modules its upstream code imports (besides the checkout).
UPSTREAM_NEEDS = {
    "patchcore": ("timm",),
    "simplenet": ("timm",),
    "csflow": ("efficientnet_pytorch",),
    "revdist": ("numba", "geomloss", "cv2"),
    "draem": ("imgaug", "cv2"),
}
#: Upstream RevDist steps its optimisers after every second batch of an epoch only: two
#: batches of 5 images per epoch, so each epoch is one step; 10 steps localise the squares.
REVDIST_UPSTREAM = REVDIST | {"batch_size": 5, "epochs": 10}
#: At native's 2 epochs upstream DRAEM's maps do not yet localise the squares; 6 do (4 did on
#: one machine, not on a fresh one: 0.52 anomalous vs 0.53 normal).
DRAEM_UPSTREAM = DRAEM_TINY | {"epochs": 6}
UPSTREAM_CASES = [
    *conformance_params(PatchCore, PATCHCORE, source="upstream"),
    *conformance_params(SimpleNet, SIMPLENET, source="upstream"),
    *conformance_params(CSFlow, CSFLOW, source="upstream"),
    *conformance_params(RevDist, REVDIST_UPSTREAM, source="upstream"),
    *conformance_params(DRAEM, DRAEM_UPSTREAM, source="upstream"),
]


@parametrize_checks(PixelStats)
def test_pixelstats_conforms(check):
    check()


@pytest.mark.parametrize("check", NATIVE_CASES)
def test_native_method_conforms(check):
    check()


@pytest.mark.upstream
@pytest.mark.parametrize("check", UPSTREAM_CASES)
def test_upstream_source_conforms(check):
    need_checkout(check.adapter, *UPSTREAM_NEEDS[check.adapter])
    check()


def _registry_methods() -> list[str]:
    """Method names from registry.yaml, read without importing any adapter (collection time)."""
    return list(yaml.safe_load(BUILTIN_REGISTRY.read_text())["methods"])


@pytest.mark.heavy
@pytest.mark.parametrize("name", _registry_methods())
def test_registry_adapter_passes_with_quick_profile(name):
    """Each registered method, at its quick profile (minutes each: heavy)."""
    entry = load_registry().methods[name]
    if not entry.available:
        pytest.skip(f"{name} not available ({entry.import_error or entry.status})")
    report = check_adapter(entry.adapter_class(), config=entry.resolved_config("quick"))
    assert set(report.passed) | set(report.skipped) == set(CHECK_NAMES)


# --- the kit itself -------------------------------------------------------------------------
def test_checks_are_named_cases_with_ids():
    checks = conformance_checks(PixelStats, {"grid": [16, 16]})
    assert [c.name for c in checks] == list(CHECK_NAMES)
    assert len(set(CHECK_NAMES)) == len(CHECK_NAMES) == 13
    assert checks[0].id == "pixelstats-native-predict-before-fit"
    assert all(c.doc for c in checks)
    ids = [p.id for p in conformance_params(PatchCore, PATCHCORE, source="upstream")]
    assert ids[-1] == "patchcore-upstream-cuda-matches-cpu"
    with pytest.raises(ValueError, match="unknown checks"):
        conformance_params(PixelStats, check_marks={"no-such-check": pytest.mark.heavy})


def test_check_adapter_report_lists_every_check():
    report = check_adapter(PixelStats)
    assert not report.failed
    assert set(report.passed) | set(report.skipped) == set(CHECK_NAMES)
    assert {"save-load", "deterministic", "refit", "predict-ignores-labels"} <= set(report.passed)


def test_pixelstats_passes_via_registry():
    reg = load_registry()
    assert "pixelstats" in reg.available(default_only=False)
    assert "save-load" in check_adapter(lambda: reg.build("pixelstats", profile="quick")).passed


class _Counting(PixelStats):
    fits: list[int] = []

    def _fit(self, train):
        type(self).fits.append(1)
        super()._fit(train)


def test_checks_share_one_fitted_adapter(monkeypatch):
    """Three fits for all the checks (shared, second instance, its refit), none per check."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checks = conformance_checks(_Counting, {"grid": [8, 8]})
    for check in checks:
        if check.name != "cuda-matches-cpu":
            check()
    assert len(_Counting.fits) == 3
    checks[0]()  # run again: nothing refitted
    assert len(_Counting.fits) == 3


def test_cuda_check_skips_without_a_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (cuda,) = [c for c in conformance_checks(PixelStats) if c.name == "cuda-matches-cpu"]
    with pytest.raises(pytest.skip.Exception, match="no CUDA device"):
        cuda()
    assert check_adapter(PixelStats).skipped == {"cuda-matches-cpu": "no CUDA device"}


def test_blind_copy_hides_the_ground_truth(tmp_path):
    test = make_tiny_category(tmp_path).split("test")
    blind = blind_copy(test, tmp_path / "blind")
    assert (blind.labels != test.labels).all() and not blind.defects
    for s, b in zip(test, blind, strict=True):
        assert b.image_path.read_bytes() == s.image_path.read_bytes()
        assert b.image_path.parent == tmp_path / "blind"
        assert not any(p.exists() for p in b.mask_paths)
    assert len({s.key for s in blind}) == len(blind)


# --- broken adapters: each fails its check and only it ----------------------------------------
class _NotFittedUnchecked(PixelStats):
    def _check_fitted(self, what):
        pass


class _FitReturnsNone(PixelStats):
    def fit(self, train):
        super().fit(train)


class _FitRaises(PixelStats):
    def _fit(self, train):
        raise RuntimeError("out of memory")


class _WrongSize(PixelStats):
    """Bypasses the base class's size check."""

    def predict(self, test):
        p = super().predict(test)
        return Predictions(p.image_scores, p.anomaly_maps[:, :10, :10])


class _WrongSizeChecked(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores, p.anomaly_maps[:, :10, :10])


class _Constant(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(np.zeros(len(test)), p.anomaly_maps)


class _FlippedMaps(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores, p.anomaly_maps[:, ::-1, ::-1].copy())


class _ThreeDimFeatures(PixelStats):
    def _extract_features(self, images):
        return super()._extract_features(images).features[:, 0]  # a bare [N, h, w] array


class _NoLoad(PixelStats):
    def _load_state(self, directory):
        self.mean_ = self.mean_ if hasattr(self, "mean_") else 0.0
        self.std_ = 1.0


class _Unseeded(PixelStats):
    def _fit(self, train):
        super()._fit(train)
        self.mean_ = self.mean_ + np.random.default_rng().normal(0, 0.01, self.mean_.shape)


class _SeededOnce(PixelStats):
    """Seeds its generator in the constructor: a second fit of one instance draws anew."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(0)

    def _fit(self, train):
        super()._fit(train)
        self.mean_ = self.mean_ + self.rng.normal(0, 0.01, self.mean_.shape)


class _BatchNormalised(PixelStats):
    """Divides by the batch's mean score: predictions depend on the other images."""

    def _predict(self, test):
        p = super()._predict(test)
        m = p.image_scores.mean()
        return Predictions(p.image_scores / m, p.anomaly_maps / m)


class _ReadsLabels(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores + test.is_anomalous, p.anomaly_maps)


class _ReadsMasks(PixelStats):
    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores, p.anomaly_maps + test.load_masks())


class _DeviceDependent(PixelStats):
    """Its 'cuda' path scales the maps differently."""

    def _predict(self, test):
        p = super()._predict(test)
        return Predictions(p.image_scores, p.anomaly_maps * (2 if self.device == "cuda" else 1))


BROKEN = [
    (_NotFittedUnchecked, "predict-before-fit", "expected NotFittedError, got AttributeError"),
    (_FitReturnsNone, "fit-returns-self", "must return self"),
    (_FitRaises, "fit-returns-self", "out of memory"),
    (_WrongSizeChecked, "fit-predict-shapes", "evaluation size"),
    (_WrongSize, "maps-at-eval-size", r"maps are \(10, 10\)"),
    (_Constant, "obvious-anomaly-scores-higher", "anomalous"),
    (_FlippedMaps, "anomaly-region-scores-higher", "inside the anomaly"),
    (_ThreeDimFeatures, "extract-features", r"expected \[N=4, C, h, w\]"),
    (_NoLoad, "save-load", "after save -> load differ"),
    (_Unseeded, "deterministic", "same seed differ"),
    (_SeededOnce, "refit", "second fit of one instance"),
    (_BatchNormalised, "predict-subset", r"rows \[3, 0\] alone"),
    (_ReadsLabels, "predict-ignores-labels", "change the predictions"),
    (_ReadsMasks, "predict-ignores-labels", "read ground truth"),
]


@pytest.mark.parametrize(
    "cls, check, message",
    [pytest.param(*case, id=f"{case[0].__name__[1:]}-{case[1]}") for case in BROKEN],
)
def test_broken_adapter_fails_its_check_only(monkeypatch, cls, check, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = check_adapter(cls, raise_on_failure=False)
    assert list(report.failed) == [check], report
    assert f"'{report.adapter}-native-{check}' failed" in report.failed[check]
    assert re.search(message, report.failed[check]), report.failed[check]
    with pytest.raises(AssertionError, match=check):
        check_adapter(cls)


def test_a_failed_fit_skips_what_needs_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = check_adapter(_FitRaises, raise_on_failure=False)
    assert report.passed == ["predict-before-fit"]
    needs_fit = set(CHECK_NAMES) - {"predict-before-fit", "fit-returns-self", "cuda-matches-cpu"}
    assert set(report.skipped) == needs_fit | {"cuda-matches-cpu"}
    assert all("fit-returns-self" in report.skipped[n] for n in needs_fit)


def test_cuda_check_catches_a_device_dependent_adapter(monkeypatch):
    """With CUDA reported present, PixelStats (numpy only) runs its 'cuda' instance on the CPU:
    the comparison itself is exercised without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "cuda-matches-cpu" in check_adapter(PixelStats, {"grid": [16, 16]}).passed
    report = check_adapter(_DeviceDependent, raise_on_failure=False)
    assert list(report.failed) == ["cuda-matches-cpu"], report
    assert "CUDA anomaly_maps differ from CPU" in report.failed["cuda-matches-cpu"]
