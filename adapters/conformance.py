"""The adapter conformance kit, in the spirit of scikit-learn's ``check_estimator``.

One call runs every check and returns the report (AssertionError naming each failed check)::

    from adapters.conformance import check_adapter
    check_adapter(MyMethod, config={...})

In a pytest suite, each named check is its own case (ids like ``mymethod-native-save-load``)::

    from adapters.conformance import parametrize_checks

    @parametrize_checks(MyMethod, config={...})
    def test_conformance(check):
        check()

The kit builds a tiny LOCO-format category (plain grey parts with a dark bar; anomalies are a
bright square) and checks the contract (:data:`CHECK_NAMES`). The checks of one adapter share
one fitted instance and its predictions, cached per (adapter, config, source, device): all
checks together fit three times (the shared instance, a second one for ``deterministic`` which
``refit`` fits again), plus once on CUDA where there is a CUDA device. A check whose
prerequisite failed (fit or predict raised) skips, naming the check that covers it, so one
fault is one failure.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adapters.base import FEATURES, Adapter, FeatureMaps, Predictions
from orchestrator.data.loco import load_category
from orchestrator.data.types import Category, SampleSet
from orchestrator.errors import CapabilityError, NotFittedError

EVAL_SIZE = (48, 64)  # (H, W): non-square, to catch H/W mix-ups
#: Default agreement of CUDA with CPU predictions: relative L2 difference of maps and scores.
CUDA_TOLERANCE = 0.25

AdapterSpec = type[Adapter] | Callable[[], Adapter]


class SkipCheck(Exception):  # noqa: N818 (a signal, like unittest.SkipTest)
    """A check that cannot run here (its reason is the message)."""


@dataclass
class ConformanceReport:
    """What :func:`check_adapter` found: check names passed, skipped and failed (with why)."""

    adapter: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"{self.adapter}: {len(self.passed)} checks passed ({', '.join(self.passed)})"]
        parts += [f"skipped {k}: {v}" for k, v in self.skipped.items()]
        parts += [f"FAILED {k}: {v}" for k, v in self.failed.items()]
        return "; ".join(parts)


def normal_part(rng: np.random.Generator) -> np.ndarray:
    """One normal part of the kit's category: grey with a dark bar, ``EVAL_SIZE``, uint8."""
    h, w = EVAL_SIZE
    img = np.full((h, w, 3), 110, np.float32) + rng.normal(0, 4, (h, w, 3))
    img[20:28, 8:56] = 40
    return np.clip(img, 0, 255).astype(np.uint8)


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_tiny_category(root: Path, n_train: int = 10, seed: int = 0) -> Category:
    """A tiny LOCO-format category with obvious structural anomalies (bright squares)."""
    rng = np.random.default_rng(seed)
    cat = root / "conformance"
    h, w = EVAL_SIZE

    for i in range(n_train):
        save_png(cat / "train" / "good" / f"{i:03d}.png", normal_part(rng))
    for i in range(2):
        save_png(cat / "validation" / "good" / f"{i:03d}.png", normal_part(rng))
        save_png(cat / "test" / "good" / f"{i:03d}.png", normal_part(rng))
    for i in range(2):
        img = normal_part(rng)
        y, x = 6 + 4 * i, 10 + 20 * i
        img[y : y + 12, x : x + 12] = 250
        save_png(cat / "test" / "structural_anomalies" / f"{i:03d}.png", img)
        mask = np.zeros((h, w), np.uint8)
        mask[y : y + 12, x : x + 12] = 1
        save_png(cat / "ground_truth" / "structural_anomalies" / f"{i:03d}" / "000.png", mask)
    (cat / "test" / "logical_anomalies").mkdir(parents=True, exist_ok=True)
    (cat / "defects_config.json").write_text(
        json.dumps(
            [
                {
                    "defect_name": "bright_square",
                    "pixel_value": 1,
                    "saturation_threshold": 1.0,
                    "relative_saturation": True,
                }
            ]
        )
    )
    return load_category(cat)


def blind_copy(test: SampleSet, root: Path) -> SampleSet:
    """``test`` with its ground truth poisoned: each image copied into a folder holding nothing
    else, labels and subsets inverted (good <-> structural), mask paths pointing at missing
    files, no defect specs. A ``predict`` that reads none of it predicts the same."""
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, s in enumerate(test):
        image = root / f"{i:03d}{s.image_path.suffix}"
        shutil.copyfile(s.image_path, image)
        good = not s.is_anomalous
        samples.append(
            replace(
                s,
                image_path=image,
                image_id=f"{i:03d}",
                label="structural" if good else "good",
                subset="structural_anomalies" if good else "good",
                mask_paths=(root / "missing" / f"{i:03d}.png",),
            )
        )
    return replace(test, samples=samples, defects={})


# --- the shared state of one adapter's checks ---------------------------------------------------
class _StageFailed(Exception):  # noqa: N818
    """A shared step (fit, predict, ...) raised; the check that owns it fails, others skip."""

    def __init__(self, stage: str, owner: str, exc: BaseException) -> None:
        super().__init__(f"{stage} raised {type(exc).__name__}: {exc}")
        self.stage, self.owner, self.exc = stage, owner, exc


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """Equal shapes and ``|a - b| <= rtol * (|b| + peak |b| / 10)``, elementwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    peak = float(np.abs(b).max()) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * peak / 10))


def _same_predictions(a: Predictions, b: Predictions, rtol: float = 1e-4) -> str:
    """Why ``a`` differs from ``b`` ('' when scores and maps agree to ``rtol``)."""
    if not _close(a.image_scores, b.image_scores, rtol):
        return f"image scores {np.round(a.image_scores, 5)} vs {np.round(b.image_scores, 5)}"
    if not _close(a.anomaly_maps, b.anomaly_maps, rtol):
        if a.anomaly_maps.shape != b.anomaly_maps.shape:
            return f"maps {a.anomaly_maps.shape} vs {b.anomaly_maps.shape}"
        diff = float(np.abs(a.anomaly_maps - b.anomaly_maps).max())
        return f"anomaly maps differ (max |difference| {diff:.3g})"
    return ""


def _relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-12))


class _Context:
    """The tiny category, the adapter factory and the results checks share (built lazily)."""

    def __init__(self, adapter: AdapterSpec, config: dict | None, source: str, device: str):
        self.adapter, self.config, self.source, self.device = adapter, config, source, device
        self._tmp = tempfile.TemporaryDirectory(prefix="conformance-")
        self.root = Path(self._tmp.name)
        self.category = make_tiny_category(self.root)
        self.train, self.test = self.category.split("train"), self.category.split("test")
        self._memo: dict[str, tuple[bool, Any]] = {}

    def make(self, device: str | None = None) -> Adapter:
        """A fresh, unfitted adapter (on ``device``, default the kit's)."""
        device = device or self.device
        if isinstance(self.adapter, type):
            cfg = dict(self.adapter.default_config) | dict(self.config or {})
            return self.adapter(cfg, device=device, source=self.source)
        made = self.adapter()
        if device != made.device:  # a factory's adapter, rebuilt as ``load`` would
            again = type(made)(made.config, device=device, source=made.source)
            again.checkout = made.checkout
            return again
        return made

    def stage(self, name: str, owner: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once; its failure (a _StageFailed naming ``owner``) is raised on every
        use."""
        if name not in self._memo:
            try:
                self._memo[name] = (True, compute())
            except _StageFailed as exc:  # a prerequisite failed: its failure, not this one's
                self._memo[name] = (False, exc)
            except Exception as exc:  # noqa: BLE001
                self._memo[name] = (False, _StageFailed(name, owner, exc))
        ok, value = self._memo[name]
        if not ok:
            raise value
        return value

    def fitted(self) -> tuple[Adapter, Any]:
        """The shared fitted adapter and what its ``fit`` returned."""

        def fit() -> tuple[Adapter, Any]:
            a = self.make()
            return a, a.fit(self.train)

        return self.stage("fit", "fit-returns-self", fit)

    def preds(self) -> Predictions:
        """The shared adapter's predictions on the test split (structurally valid)."""

        def predict() -> Predictions:
            p = self.fitted()[0].predict(self.test)
            if not isinstance(p, Predictions):
                raise TypeError(f"predict returned {type(p).__name__}, not Predictions")
            return p

        return self.stage("predict", "fit-predict-shapes", predict)

    def second(self) -> tuple[Adapter, Predictions]:
        """A second instance, fitted with the same seed, and its predictions."""

        def fit() -> tuple[Adapter, Predictions]:
            self.preds()  # the shared fit and predict first (their failures are theirs)
            b = self.make()
            b.fit(self.train)  # not chained: fit-returns-self covers the return value
            return b, b.predict(self.test)

        return self.stage("second", "deterministic", fit)

    def close(self) -> None:
        self._memo.clear()
        self._tmp.cleanup()


_CACHE: OrderedDict[tuple, _Context] = OrderedDict()
_CACHE_SIZE = 4  # contexts kept (tiny models): the checks of one adapter run one after another


def _context(adapter: AdapterSpec, config: dict | None, source: str, device: str) -> _Context:
    key = (adapter, json.dumps(config or {}, sort_keys=True, default=str), source, device)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ctx = _Context(adapter, config, source, device)
    _CACHE[key] = ctx
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)[1].close()
    return ctx


def clear_cache() -> None:
    """Drop the shared fitted adapters (and their temporary folders)."""
    while _CACHE:
        _CACHE.popitem()[1].close()


# --- the checks ---------------------------------------------------------------------------------
def _predict_before_fit(ctx: _Context) -> None:
    """``predict`` on an unfitted adapter raises NotFittedError."""
    try:
        ctx.make().predict(ctx.test)
    except NotFittedError:
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"expected NotFittedError, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError("no error raised")


def _fit_returns_self(ctx: _Context) -> None:
    """``fit`` returns the adapter itself."""
    adapter, returned = ctx.fitted()
    assert returned is adapter, f"fit() must return self, returned {type(returned).__name__}"


def _fit_predict_shapes(ctx: _Context) -> None:
    """Scores ``[N]``, maps float32 ``[N, H, W]``, all finite."""
    p, n = ctx.preds(), len(ctx.test)
    assert p.image_scores.shape == (n,), (
        f"image scores: expected ({n},), got {p.image_scores.shape}"
    )
    assert p.anomaly_maps.ndim == 3 and len(p.anomaly_maps) == n, (
        f"maps: expected [{n}, H, W], got {p.anomaly_maps.shape}"
    )
    assert p.anomaly_maps.dtype == np.float32, f"maps dtype {p.anomaly_maps.dtype}, not float32"
    finite = np.isfinite(p.image_scores).all() and np.isfinite(p.anomaly_maps).all()
    assert finite, "scores and maps must be finite"


def _maps_at_eval_size(ctx: _Context) -> None:
    """Maps at the SampleSet's (non-square) evaluation size."""
    shape = ctx.preds().anomaly_maps.shape[1:]
    assert shape == EVAL_SIZE, f"maps are {shape}, evaluation size is {EVAL_SIZE} (H, W)"


def _obvious_anomaly_scores_higher(ctx: _Context) -> None:
    """Every anomalous test image scores above every normal one."""
    s, bad = ctx.preds().image_scores, ctx.test.is_anomalous
    assert s[bad].min() > s[~bad].max(), (
        f"anomalous {np.round(s[bad], 4)} vs normal {np.round(s[~bad], 4)}"
    )


def _anomaly_region_scores_higher(ctx: _Context) -> None:
    """On each anomalous image the mean map inside the ground-truth region is above the rest."""
    maps, masks = ctx.preds().anomaly_maps, ctx.test.load_masks()
    if maps.shape != masks.shape:
        raise SkipCheck(f"maps {maps.shape[1:]} not at the evaluation size (maps-at-eval-size)")
    for i in np.flatnonzero(ctx.test.is_anomalous):
        inside, outside = float(maps[i][masks[i]].mean()), float(maps[i][~masks[i]].mean())
        assert inside > outside, (
            f"{ctx.test[i].key}: mean map {inside:.4g} inside the anomaly, {outside:.4g} outside"
        )


def _extract_features(ctx: _Context) -> None:
    """Declared 'features': ``[N, C, h, w]`` FeatureMaps; not declared: CapabilityError."""
    adapter, _ = ctx.fitted()
    if FEATURES not in adapter.capabilities:
        try:
            adapter.extract_features(ctx.test)
        except CapabilityError:
            return
        raise AssertionError("extract_features works but 'features' is not declared")
    f, n = adapter.extract_features(ctx.test), len(ctx.test)
    ok = isinstance(f, FeatureMaps) and f.features.ndim == 4 and f.features.shape[0] == n
    assert ok, f"expected [N={n}, C, h, w] FeatureMaps, got {getattr(f, 'features', f)!r:.80}"
    assert np.isfinite(f.features).all(), "features must be finite"


def _save_load(ctx: _Context) -> None:
    """save -> load (a new instance) predicts the same."""
    adapter, full = ctx.fitted()[0], ctx.preds()
    folder = adapter.save(ctx.root / "saved")
    loaded = type(adapter).load(folder, device=ctx.device)
    why = _same_predictions(loaded.predict(ctx.test), full)
    assert not why, f"predictions after save -> load differ: {why}"


def _deterministic(ctx: _Context) -> None:
    """A second instance fitted with the same seed on the same data predicts the same."""
    _, second = ctx.second()
    why = _same_predictions(second, ctx.preds())
    assert not why, f"two fits with the same seed differ: {why}"


def _refit(ctx: _Context) -> None:
    """Fitting a fitted adapter again on the same data gives what its first fit gave (fit
    starts afresh: nothing accumulates, the seed is applied in fit)."""
    adapter, first = ctx.second()
    if _same_predictions(first, ctx.preds()):
        raise SkipCheck("fits with the same seed differ already (check 'deterministic')")
    adapter.fit(ctx.train)
    why = _same_predictions(adapter.predict(ctx.test), first)
    assert not why, f"the second fit of one instance differs from its first: {why}"


def _predict_subset(ctx: _Context) -> None:
    """Predicting part of the test set (reordered, or one image) gives those rows of the full
    prediction: nothing depends on the other images of the batch. (Tolerance 1e-2: another
    batch size may pick other float kernels, and an untrained flow amplifies that to ~1e-3;
    a batch statistic changes results by far more.)"""
    adapter, full = ctx.fitted()[0], ctx.preds()
    n = len(ctx.test)
    for rows in ([n - 1, 0], [1]):
        part = adapter.predict(ctx.test.subset(rows))
        ref = Predictions(full.image_scores[rows], full.anomaly_maps[rows])
        why = _same_predictions(part, ref, rtol=1e-2)
        assert not why, f"predicting rows {rows} alone differs from the full prediction: {why}"


def _predict_ignores_labels(ctx: _Context) -> None:
    """``predict`` reads no labels, subsets, masks or defect specs (see :func:`blind_copy`)."""
    adapter, full = ctx.fitted()[0], ctx.preds()
    blind = blind_copy(ctx.test, ctx.root / "blind")
    try:
        p = adapter.predict(blind)
    except OSError as exc:
        raise AssertionError(f"predict read ground truth ({type(exc).__name__}: {exc})") from exc
    why = _same_predictions(p, full, rtol=1e-5)
    assert not why, f"inverted labels / missing masks change the predictions: {why}"


def _cuda_matches_cpu(ctx: _Context, tolerance: float = CUDA_TOLERANCE) -> None:
    """fit/predict on CUDA agree with CPU (relative L2 of maps and of scores within
    ``tolerance``), rank the obvious anomalies first, and a CUDA-fitted adapter saved and
    loaded on CPU predicts what it did on CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise SkipCheck("no CUDA device")
    if ctx.device == "cpu":
        cpu = ctx.preds()
    else:
        on_cpu = ctx.make("cpu")
        on_cpu.fit(ctx.train)
        cpu = on_cpu.predict(ctx.test)
    cuda_adapter = ctx.make("cuda")
    cuda_adapter.fit(ctx.train)
    cuda = cuda_adapter.predict(ctx.test)
    shapes = (cuda.image_scores.shape, cuda.anomaly_maps.shape, cuda.anomaly_maps.dtype)
    assert shapes == (cpu.image_scores.shape, cpu.anomaly_maps.shape, cpu.anomaly_maps.dtype), (
        f"CUDA predictions {shapes} vs CPU"
    )
    for what in ("anomaly_maps", "image_scores"):
        d = _relative_l2(getattr(cuda, what), getattr(cpu, what))
        assert d <= tolerance, f"CUDA {what} differ from CPU by {d:.3g} (relative L2)"
    s, bad = cuda.image_scores, ctx.test.is_anomalous
    assert s[bad].min() > s[~bad].max(), f"on CUDA: anomalous {s[bad]} vs normal {s[~bad]}"
    folder = cuda_adapter.save(ctx.root / "saved-cuda")
    on_cpu = type(cuda_adapter).load(folder, device="cpu").predict(ctx.test)
    d = _relative_l2(on_cpu.anomaly_maps, cuda.anomaly_maps)
    assert d <= tolerance, f"CUDA-fitted, loaded on CPU: maps differ by {d:.3g} (relative L2)"


#: (name, function) of every check, in the order ``check_adapter`` runs them.
CHECKS: tuple[tuple[str, Callable[[_Context], None]], ...] = (
    ("predict-before-fit", _predict_before_fit),
    ("fit-returns-self", _fit_returns_self),
    ("fit-predict-shapes", _fit_predict_shapes),
    ("maps-at-eval-size", _maps_at_eval_size),
    ("obvious-anomaly-scores-higher", _obvious_anomaly_scores_higher),
    ("anomaly-region-scores-higher", _anomaly_region_scores_higher),
    ("extract-features", _extract_features),
    ("save-load", _save_load),
    ("deterministic", _deterministic),
    ("refit", _refit),
    ("predict-subset", _predict_subset),
    ("predict-ignores-labels", _predict_ignores_labels),
    ("cuda-matches-cpu", _cuda_matches_cpu),
)
CHECK_NAMES: tuple[str, ...] = tuple(name for name, _ in CHECKS)


@dataclass(frozen=True)
class Check:
    """One named check of one adapter; calling it runs it (the shared fit happens once)."""

    name: str
    adapter: str  # the adapter's label, e.g. "patchcore"
    source: str
    _func: Callable[[_Context], None] = field(repr=False)
    _context: Callable[[], _Context] = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        """The pytest id, e.g. ``patchcore-native-save-load``."""
        return f"{self.adapter}-{self.source}-{self.name}"

    @property
    def doc(self) -> str:
        return " ".join((self._func.__doc__ or "").split())

    def run(self) -> None:
        """Raise AssertionError naming the check on a violation, SkipCheck when it cannot run."""
        try:
            self._func(self._context())
        except SkipCheck:
            raise
        except _StageFailed as exc:
            if exc.owner != self.name:
                raise SkipCheck(f"needs {exc.stage}, which raised (check {exc.owner!r})") from None
            raise AssertionError(f"conformance check '{self.id}' failed: {exc}") from exc.exc
        except Exception as exc:  # noqa: BLE001
            what = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
            raise AssertionError(f"conformance check '{self.id}' failed: {what}") from exc

    def __call__(self) -> None:
        """:meth:`run`, a skip turned into pytest's skip when running under pytest."""
        try:
            self.run()
        except SkipCheck as exc:
            if "pytest" in sys.modules:
                import pytest

                pytest.skip(str(exc))
            raise


def _label(adapter: AdapterSpec) -> str:
    if isinstance(adapter, type):
        return adapter.__dict__.get("name") or adapter.__name__.lower()
    return getattr(adapter, "__name__", "adapter").strip("<>")


def conformance_checks(
    adapter: AdapterSpec,
    config: dict[str, Any] | None = None,
    source: str = "native",
    device: str = "cpu",
    name: str | None = None,
    cuda_tolerance: float = CUDA_TOLERANCE,
) -> list[Check]:
    """The named checks of an adapter class (config merged over its ``default_config``) or a
    zero-argument factory; nothing is built until a check runs. ``name`` labels the ids
    (default: the class's ``name``)."""
    label = name or _label(adapter)

    def context() -> _Context:
        return _context(adapter, config, source, device)

    def bind(func: Callable[[_Context], None]) -> Callable[[_Context], None]:
        if func is _cuda_matches_cpu and cuda_tolerance != CUDA_TOLERANCE:

            def cuda(ctx: _Context) -> None:
                _cuda_matches_cpu(ctx, cuda_tolerance)

            cuda.__doc__ = func.__doc__
            return cuda
        return func

    return [Check(n, label, source, bind(f), context) for n, f in CHECKS]


def conformance_params(
    adapter: AdapterSpec,
    *args: Any,
    marks: Any = (),
    check_marks: dict[str, Any] | None = None,
    **kwargs: Any,
) -> list:
    """The checks as ``pytest.param`` objects with their ids, for a
    ``pytest.mark.parametrize("check", ...)`` over one or several adapters. ``marks`` go on
    every case, ``check_marks`` (check name -> mark or marks, e.g. an xfail) on one check's."""
    import pytest

    extra = dict(check_marks or {})
    unknown = set(extra) - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"check_marks: unknown checks {sorted(unknown)} (known: {CHECK_NAMES})")
    params = []
    for c in conformance_checks(adapter, *args, **kwargs):
        own = extra.get(c.name, ())
        own = list(own) if isinstance(own, list | tuple) else [own]
        every = list(marks) if isinstance(marks, list | tuple) else [marks]
        params.append(pytest.param(c, id=c.id, marks=every + own))
    return params


def parametrize_checks(adapter: AdapterSpec, *args: Any, **kwargs: Any) -> Any:
    """A ``pytest.mark.parametrize("check", ...)`` decorator, one case per named check."""
    import pytest

    return pytest.mark.parametrize("check", conformance_params(adapter, *args, **kwargs))


def check_adapter(
    adapter: AdapterSpec,
    config: dict[str, Any] | None = None,
    source: str = "native",
    device: str = "cpu",
    raise_on_failure: bool = True,
    cuda_tolerance: float = CUDA_TOLERANCE,
) -> ConformanceReport:
    """Run every check on an adapter class (or a zero-argument factory); the report. Raises
    one AssertionError naming each failed check unless ``raise_on_failure`` is false."""
    checks = conformance_checks(adapter, config, source, device, cuda_tolerance=cuda_tolerance)
    report = ConformanceReport(_label(adapter))
    for check in checks:
        try:
            check.run()
        except SkipCheck as exc:
            report.skipped[check.name] = str(exc)
        except AssertionError as exc:
            report.failed[check.name] = str(exc)
        else:
            report.passed.append(check.name)
    if report.failed and raise_on_failure:
        raise AssertionError("\n".join(report.failed.values()))
    return report
