"""A detector: a fitted adapter with what turns its scores into decisions (the calibration
and thresholds fitted on validation data), saved as one folder and scoring image files."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.models.thresholds import Thresholds

DETECTOR_FILE = "detector.json"
ADAPTER_DIR = "adapter"
FORMAT = 1


@dataclass
class Detection:
    """What :meth:`Detector.detect` returns for N images (in the order given)."""

    scores: np.ndarray  # float64 [N], higher = more anomalous
    probabilities: np.ndarray  # float64 [N] (the validation-fitted calibration)
    anomalous: np.ndarray  # bool [N]: score >= the image threshold
    maps: list[np.ndarray] | None = None  # float32 [H, W] at each image's own size


@dataclass
class Detector:
    adapter: Any  # adapters.base.Adapter, fitted
    calibrator: Any  # orchestrator.calibration.Calibrator (a fitted bounded sigmoid)
    thresholds: Thresholds
    info: dict[str, Any] = field(default_factory=dict)  # method, category, source, profile, ...

    def save(self, directory: str | Path) -> Path:
        """``detector.json`` and the adapter's own folder under ``directory``."""
        from orchestrator.calibration import calibrator_state

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.adapter.save(directory / ADAPTER_DIR)
        meta = {
            "format": FORMAT,
            "thresholds": self.thresholds.as_dict(),
            "calibration": calibrator_state(self.calibrator),
            "info": self.info,
        }
        (directory / DETECTOR_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> Detector:
        """The detector :meth:`save` wrote, its adapter on ``device``."""
        from orchestrator.calibration import calibrator_from_state
        from orchestrator.registry import import_adapter

        directory = Path(directory)
        meta = json.loads((directory / DETECTOR_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{directory}: detector format {meta.get('format')!r}, not {FORMAT}")
        saved = directory / ADAPTER_DIR
        adapter_cls = import_adapter(json.loads((saved / "adapter.json").read_text())["adapter"])
        adapter = adapter_cls.load(saved, device=device)
        calibrator = calibrator_from_state(meta["calibration"])
        return cls(adapter, calibrator, Thresholds.from_dict(meta["thresholds"]), meta["info"])

    def decide(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, anomalous)`` of raw image scores."""
        scores = np.asarray(scores, dtype=np.float64)
        return self.calibrator.predict(scores), scores >= self.thresholds.image

    def detect(
        self,
        paths: Sequence[str | Path],
        maps: bool = False,
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> Detection:
        """Score image files (any size; each map comes back at its image's size), in
        batches of images of one size. ``progress(n)`` is called after each batch."""
        from orchestrator.data.types import image_size

        paths = [Path(p) for p in paths]
        n = len(paths)
        scores = np.zeros(n, dtype=np.float64)
        out_maps: list[np.ndarray | None] = [None] * n
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(paths):
            by_size.setdefault(image_size(p), []).append(i)
        for size, idx in by_size.items():
            for start in range(0, len(idx), max(1, batch_size)):
                part = idx[start : start + max(1, batch_size)]
                preds = self.adapter.predict(self._sample_set([paths[i] for i in part], size))
                scores[part] = preds.image_scores
                if maps:
                    for j, i in enumerate(part):
                        out_maps[i] = preds.anomaly_maps[j]
                if progress:
                    progress(len(part))
        probabilities, anomalous = self.decide(scores)
        return Detection(scores, probabilities, anomalous, out_maps if maps else None)

    def _sample_set(self, paths: Sequence[Path], size: tuple[int, int]):
        """Unlabelled test samples at their own size (a detector never sees a label)."""
        from orchestrator.data.types import Sample, SampleSet

        category = str(self.info.get("category", ""))
        samples = [Sample(p, p.stem, "test", p.parent.name, "good", (), category) for p in paths]
        return SampleSet(samples, tuple(size), {}, category)
