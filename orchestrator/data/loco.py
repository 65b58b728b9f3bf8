"""Loaders for MVTec LOCO AD and MVTec AD category folders, as their authors ship them.

MVTec LOCO AD::

    <category>/train/good/*.png
    <category>/validation/good/*.png
    <category>/test/{good,logical_anomalies,structural_anomalies}/*.png
    <category>/ground_truth/{logical_anomalies,structural_anomalies}/<image_id>/000.png, 001.png ...
    <category>/defects_config.json

One ground-truth PNG is one annotated defect region; its non-zero pixel value is the defect id
listed in ``defects_config.json`` with its saturation threshold.

MVTec AD folders are read by :mod:`orchestrator.data.mvtec`; :func:`load_category` detects
the layout and dispatches.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.data.types import Category, DefectSpec, Sample
from orchestrator.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
LOCO_TEST_SUBSETS = {
    "good": "good",
    "logical_anomalies": "logical",
    "structural_anomalies": "structural",
}


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def detect_format(category_dir: Path) -> str:
    """``"loco"`` or ``"mvtec"`` from the folder's layout."""
    if (category_dir / "defects_config.json").exists():
        return "loco"
    test = category_dir / "test"
    if (test / "logical_anomalies").is_dir() or (test / "structural_anomalies").is_dir():
        return "loco"
    gt = category_dir / "ground_truth"
    if gt.is_dir():
        for sub in gt.iterdir():
            if sub.is_dir() and any(p.is_dir() for p in sub.iterdir()):
                return "loco"
    return "mvtec"


def read_defects_config(path: Path) -> dict[int, DefectSpec]:
    """Parse LOCO's ``defects_config.json`` into ``{pixel_value: DefectSpec}``."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read defects config ({exc})") from exc
    specs: dict[int, DefectSpec] = {}
    for entry in entries:
        try:
            spec = DefectSpec(
                name=str(entry["defect_name"]),
                pixel_value=int(entry["pixel_value"]),
                saturation_threshold=float(entry["saturation_threshold"]),
                relative_saturation=bool(entry["relative_saturation"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: malformed entry {entry!r} ({exc})") from exc
        specs[spec.pixel_value] = spec
    return specs


def load_category(category_dir: str | Path, fmt: str = "auto") -> Category:
    """Load one category folder (LOCO or MVTec AD layout, detected unless ``fmt`` is given)."""
    category_dir = Path(category_dir)
    if not category_dir.is_dir():
        raise UserError(f"{category_dir}: no such category folder")
    fmt = detect_format(category_dir) if fmt == "auto" else fmt
    if fmt == "loco":
        category = _load_loco(category_dir)
    elif fmt == "mvtec":
        from orchestrator.data.mvtec import load_mvtec

        category = load_mvtec(category_dir)
    else:
        raise UserError(f"unknown dataset format {fmt!r} (expected loco or mvtec)")
    if not category.train:
        raise UserError(
            f"{category_dir}: no training images in train/good "
            f"(see what is wrong with: orchestrate datasets check {category_dir})"
        )
    return category


def assemble(category_dir: Path, name: str, fmt: str, test: list[Sample], defects) -> Category:
    """A category of ``fmt`` from its test samples: train/ and validation/ hold good images
    in every format."""
    return Category(
        name=name,
        root=category_dir,
        format=fmt,
        train=good_samples(category_dir, "train"),
        validation=good_samples(category_dir, "validation"),
        test=test,
        defects=defects,
    )


def good_samples(category_dir: Path, split: str) -> list[Sample]:
    """The images of ``<category>/<split>/good`` as good samples."""
    return [
        Sample(p, p.stem, split, "good", "good", (), category_dir.name)
        for p in list_images(category_dir / split / "good")
    ]


def _load_loco(category_dir: Path) -> Category:
    name = category_dir.name
    cfg = category_dir / "defects_config.json"
    defects = read_defects_config(cfg) if cfg.exists() else {}
    test: list[Sample] = []
    for subset, label in LOCO_TEST_SUBSETS.items():
        for p in list_images(category_dir / "test" / subset):
            masks: tuple[Path, ...] = ()
            if label != "good":
                masks = tuple(list_images(category_dir / "ground_truth" / subset / p.stem))
            test.append(Sample(p, p.stem, "test", subset, label, masks, name))
    return assemble(category_dir, name, "loco", test, defects)
