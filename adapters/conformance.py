"""The adapter conformance kit, in the spirit of scikit-learn's ``check_estimator``.

    from adapters.conformance import check_adapter
    check_adapter(MyMethod, config={...})          # raises AssertionError on a violation

It builds a tiny LOCO-format category (plain grey parts with a dark bar; anomalies are a
bright square), then checks the contract: fit/predict shapes and dtypes, maps at the
(non-square) evaluation size, a higher score for an obvious anomaly than for normal images,
``extract_features`` shape, save -> load -> identical predictions, determinism under a fixed
seed, a clear error for predict-before-fit, and declared capabilities matching behaviour.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adapters.base import FEATURES, Adapter, FeatureMaps, Predictions
from orchestrator.data.loco import load_category
from orchestrator.data.types import Category
from orchestrator.errors import CapabilityError, NotFittedError

EVAL_SIZE = (48, 64)  # (H, W): non-square, to catch H/W mix-ups


@dataclass
class ConformanceReport:
    adapter: str
    passed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.adapter}: {len(self.passed)} checks passed ({', '.join(self.passed)})"


def make_tiny_category(root: Path, n_train: int = 10, seed: int = 0) -> Category:
    """A tiny LOCO-format category with obvious structural anomalies (bright squares)."""
    rng = np.random.default_rng(seed)
    cat = root / "conformance"
    h, w = EVAL_SIZE

    def normal() -> np.ndarray:
        img = np.full((h, w, 3), 110, np.float32) + rng.normal(0, 4, (h, w, 3))
        img[20:28, 8:56] = 40
        return np.clip(img, 0, 255).astype(np.uint8)

    def save(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    for i in range(n_train):
        save(cat / "train" / "good" / f"{i:03d}.png", normal())
    for i in range(2):
        save(cat / "validation" / "good" / f"{i:03d}.png", normal())
        save(cat / "test" / "good" / f"{i:03d}.png", normal())
    for i in range(2):
        img = normal()
        y, x = 6 + 4 * i, 10 + 20 * i
        img[y : y + 12, x : x + 12] = 250
        save(cat / "test" / "structural_anomalies" / f"{i:03d}.png", img)
        mask = np.zeros((h, w), np.uint8)
        mask[y : y + 12, x : x + 12] = 1
        save(cat / "ground_truth" / "structural_anomalies" / f"{i:03d}" / "000.png", mask)
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


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise AssertionError(f"conformance check '{name}' failed: {message}")


def check_adapter(
    adapter: type[Adapter] | Callable[[], Adapter],
    config: dict[str, Any] | None = None,
    source: str = "native",
    device: str = "cpu",
) -> ConformanceReport:
    """Run an adapter class (or a zero-argument factory) through the contract."""
    if isinstance(adapter, type):
        cls = adapter
        cfg = dict(cls.default_config) | dict(config or {})

        def factory() -> Adapter:
            return cls(cfg, device=device, source=source)
    else:
        factory = adapter
    first = factory()
    report = ConformanceReport(type(first).__name__)
    with tempfile.TemporaryDirectory() as tmp:
        cat = make_tiny_category(Path(tmp))
        train, test = cat.split("train"), cat.split("test")

        try:
            first.predict(test)
        except NotFittedError:
            report.passed.append("predict-before-fit")
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(
                "conformance check 'predict-before-fit' failed: expected NotFittedError, got "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        else:
            raise AssertionError("conformance check 'predict-before-fit' failed: no error raised")

        returned = first.fit(train)
        _check(returned is first, "fit-returns-self", "fit() must return self")
        preds = first.predict(test)
        _check(isinstance(preds, Predictions), "predict-type", f"got {type(preds).__name__}")
        _check(
            preds.image_scores.shape == (len(test),),
            "image-scores-shape",
            f"expected ({len(test)},), got {preds.image_scores.shape}",
        )
        _check(
            preds.anomaly_maps.shape == (len(test), *EVAL_SIZE),
            "maps-at-eval-size",
            f"expected {(len(test), *EVAL_SIZE)}, got {preds.anomaly_maps.shape}",
        )
        _check(preds.anomaly_maps.dtype == np.float32, "maps-dtype", str(preds.anomaly_maps.dtype))
        _check(
            bool(np.isfinite(preds.image_scores).all() and np.isfinite(preds.anomaly_maps).all()),
            "finite",
            "scores and maps must be finite",
        )
        report.passed += ["fit-predict-shapes", "maps-at-eval-size"]

        anomalous = test.is_anomalous
        s = preds.image_scores
        _check(
            s[anomalous].min() > s[~anomalous].max(),
            "obvious-anomaly-scores-higher",
            f"anomalous {np.round(s[anomalous], 4)} vs normal {np.round(s[~anomalous], 4)}",
        )
        report.passed.append("obvious-anomaly-scores-higher")

        if FEATURES in first.capabilities:
            feats = first.extract_features(test)
            _check(
                isinstance(feats, FeatureMaps)
                and feats.features.ndim == 4
                and feats.features.shape[0] == len(test),
                "extract-features-shape",
                f"expected [N={len(test)}, C, h, w], got {getattr(feats, 'features', feats)!r:.80}",
            )
            report.passed.append("extract-features")
        else:
            try:
                first.extract_features(test)
            except CapabilityError:
                report.passed.append("missing-capability-declared")
            else:
                raise AssertionError(
                    "conformance check 'capabilities' failed: extract_features "
                    "works but 'features' is not declared"
                )

        saved = first.save(Path(tmp) / "saved")
        loaded = type(first).load(saved, device=device)
        again = loaded.predict(test)
        _check(
            np.allclose(again.image_scores, preds.image_scores, rtol=1e-5, atol=1e-6)
            and np.allclose(again.anomaly_maps, preds.anomaly_maps, rtol=1e-4, atol=1e-5),
            "save-load-identical",
            "predictions after save -> load differ",
        )
        report.passed.append("save-load")

        second = factory().fit(train).predict(test)
        _check(
            np.allclose(second.image_scores, preds.image_scores, rtol=1e-5, atol=1e-6),
            "deterministic",
            f"two fits with the same seed differ: {preds.image_scores} vs {second.image_scores}",
        )
        report.passed.append("deterministic")
    return report
