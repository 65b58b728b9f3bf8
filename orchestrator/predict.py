"""Scoring new images with a saved detector (``orchestrate predict``): per image an anomaly
map in the official MVTec LOCO layout, an overlay of the predicted region, and one row of
``predictions.csv``; an unreadable image is listed in ``errors.csv`` and skipped."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from orchestrator.errors import UserError


@dataclass
class PredictResult:
    scored: int = 0
    anomalous: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (image, why)
    out: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


@dataclass(frozen=True)
class Item:
    path: Path
    name: str  # as predictions.csv shows it: relative to the folder given, else the file name


def collect_images(inputs: Sequence[str | Path]) -> list[Item]:
    """The image files named (a folder: every image under it, recursively, sorted)."""
    from orchestrator.data.loco import IMAGE_SUFFIXES

    items: list[Item] = []
    for given in map(Path, inputs):
        if given.is_dir():
            found = sorted(
                p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise UserError(f"{given}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            items += [Item(p, str(p.relative_to(given))) for p in found]
        elif given.is_file():
            items.append(Item(given, given.name))
        else:
            raise UserError(f"{given}: no such file or folder")
    return items


def map_names(items: Sequence[Item], category: str) -> list[Path]:
    """Each image's map path relative to ``anomaly_maps/`` (``<category>/test/<its folder>/
    <its stem>.tiff``); two images that would share one is a UserError, before any work."""
    from orchestrator.reports.maps import official_map_path

    names = [official_map_path(Path(), category, i.path.parent.name, i.path.stem) for i in items]
    seen: dict[Path, str] = {}
    clashes = []
    for item, name in zip(items, names, strict=True):
        if name in seen:
            clashes.append(f"{seen[name]} and {item.name} -> {name}")
        seen.setdefault(name, item.name)
    if clashes:
        raise UserError(
            "these images would write the same map (same folder name and file stem): "
            + "; ".join(clashes[:5])
        )
    return names


def unreadable(path: Path) -> str | None:
    """Why an image file cannot be scored, or None (decoded with the dataset loader)."""
    from orchestrator.data.types import read_rgb

    try:
        read_rgb(path)
    except Exception as exc:  # noqa: BLE001 - any decoder error: list it, go on
        return f"{type(exc).__name__}: {exc}"
    return None


def region_overlay(image: np.ndarray, anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """``image`` (uint8 RGB) with the predicted region (map >= ``threshold``) tinted red and
    outlined in yellow."""
    region = np.asarray(anomaly_map) >= threshold
    out = image.astype(np.float32)
    out[region] = 0.55 * out[region] + 0.45 * np.array([255.0, 0.0, 0.0])
    edge = region & ~(
        np.roll(region, 1, 0)
        & np.roll(region, -1, 0)
        & np.roll(region, 1, 1)
        & np.roll(region, -1, 1)
    )
    out[edge] = (255.0, 230.0, 0.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def predict_images(
    model_uri: str,
    inputs: Sequence[str | Path],
    out_dir: Path,
    device: str = "auto",
    batch_size: int = 8,
    tracking_uri: str | None = None,
    stream: TextIO | None = None,
) -> PredictResult:
    """Score every image of ``inputs`` with the detector at ``model_uri``; write maps,
    overlays, ``predictions.csv`` (and ``errors.csv``) under ``out_dir``."""
    import pandas as pd
    from PIL import Image
    from tqdm import tqdm

    from orchestrator.data.types import read_rgb
    from orchestrator.reports.maps import write_map

    stream = stream or sys.stderr
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    items = collect_images(inputs)
    detector = _load(model_uri, device, tracking_uri)
    category = str(detector.info.get("category") or "images")
    names = map_names(items, category)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = PredictResult(out=out_dir)
    rows = []
    good = []
    for item, name in zip(items, names, strict=True):
        why = unreadable(item.path)
        if why:
            result.failed.append((item.name, why))
            print(f"skipped {item.name}: {why}", file=stream)
        else:
            good.append((item, name))
    bar = tqdm(total=len(good), desc="predict", unit="img", file=stream, leave=False)
    thr = detector.thresholds
    for start in range(0, len(good), batch_size):
        part = good[start : start + batch_size]
        found = detector.detect([i.path for i, _ in part], maps=True, batch_size=batch_size)
        for j, (item, name) in enumerate(part):
            amap = found.maps[j] if found.maps else None
            write_map(out_dir / "anomaly_maps" / name, amap)
            overlay = region_overlay(read_rgb(item.path), amap, thr.pixel)
            png = (out_dir / "overlays" / name).with_suffix(".png")
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(overlay).save(png, compress_level=1)  # fast; size matters less
            label = "anomalous" if found.anomalous[j] else "good"
            rows.append((item.name, found.scores[j], found.probabilities[j], label))
        bar.update(len(part))
    bar.close()
    table = pd.DataFrame(rows, columns=["image", "score", "probability", "label"])
    table.to_csv(out_dir / "predictions.csv", index=False)
    if result.failed:
        pd.DataFrame(result.failed, columns=["image", "error"]).to_csv(
            out_dir / "errors.csv", index=False
        )
    result.scored = len(rows)
    result.anomalous = int((table["label"] == "anomalous").sum())
    return result


def _load(model_uri: str, device: str, tracking_uri: str | None):
    """The detector at ``model_uri``; any failure to find or open it is one UserError."""
    import os

    from orchestrator.models.pyfunc import load_detector

    if not ("://" in model_uri or ":/" in model_uri) and not Path(model_uri).is_dir():
        raise UserError(
            f"--model {model_uri!r}: not a folder, nor a runs:/RUN_ID/model or "
            "models:/NAME/VERSION URI"
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return load_detector(model_uri, device=device, tracking_uri=tracking_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow's own errors: say which model, once
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load the model {model_uri}: {first}") from exc
