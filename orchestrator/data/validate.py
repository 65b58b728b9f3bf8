"""Validation of LOCO-format and MVTec AD folders: every problem, one line each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from orchestrator.data.loco import LOCO_TEST_SUBSETS, detect_format, list_images
from orchestrator.data.mvtec import mvtec_mask_path

#: ``Problem.kind`` of a defective test image that has no mask yet
NO_MASKS = "no-masks"


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    kind: str = ""  # NO_MASKS, or "" for any other problem

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _open(
    path: Path, problems: list[Problem], sizes: dict[Path, tuple[int, int]] | None = None
) -> np.ndarray | None:
    """The image's pixels (None and a problem when unreadable); its (height, width) goes into
    ``sizes`` when given."""
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - any decoder error is the user's file
        problems.append(Problem(path, f"unreadable image ({type(exc).__name__}: {exc})"))
        return None
    if sizes is not None:
        sizes[path] = arr.shape[:2]
    return arr


def _size_problems(sizes: dict[Path, tuple[int, int]]) -> list[Problem]:
    """Images whose size differs from the category's (the most common one): a model fitted at
    one size and evaluated at another gives numbers that mean nothing."""
    if not sizes:
        return []
    counts: dict[tuple[int, int], int] = {}
    for hw in sizes.values():
        counts[hw] = counts.get(hw, 0) + 1
    h, w = max(counts, key=lambda k: counts[k])
    return [
        Problem(p, f"image size {hw[1]}x{hw[0]} differs from the category's {w}x{h}")
        for p, hw in sizes.items()
        if hw != (h, w)
    ]


def _check_good_split(
    cat: Path,
    split: str,
    problems: list[Problem],
    required: bool,
    sizes: dict[Path, tuple[int, int]] | None = None,
) -> None:
    folder = cat / split / "good"
    if not folder.is_dir():
        if required:
            problems.append(Problem(cat / split, "missing split folder (expected good/ inside)"))
        return
    images = list_images(folder)
    if not images and split == "train":
        problems.append(Problem(folder, "empty train set (no images)"))
    for p in images:
        _open(p, problems, sizes)


REQUIRED_KEYS = {"defect_name", "pixel_value", "saturation_threshold", "relative_saturation"}


def _read_config(cat: Path, problems: list[Problem]) -> set[int] | None:
    """Pixel values listed in ``defects_config.json``; each malformed entry is a problem."""
    path = cat / "defects_config.json"
    if not path.exists():
        problems.append(Problem(path, "missing defects_config.json"))
        return None
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(Problem(path, f"malformed defects config ({exc})"))
        return None
    if not isinstance(entries, list):
        problems.append(Problem(path, "malformed defects config (expected a JSON list)"))
        return None
    values: set[int] = set()
    for e in entries:
        if not isinstance(e, dict):
            problems.append(Problem(path, f"entry {e!r} is not an object"))
            continue
        missing = REQUIRED_KEYS - set(e)
        if missing:
            problems.append(Problem(path, f"entry {e!r} lacks {', '.join(sorted(missing))}"))
            continue
        try:
            value, threshold = int(e["pixel_value"]), float(e["saturation_threshold"])
        except (TypeError, ValueError):
            problems.append(
                Problem(path, f"entry {e!r}: pixel_value/saturation_threshold must be numbers")
            )
            continue
        if value in values:
            problems.append(Problem(path, f"pixel value {value} listed twice"))
        if not 1 <= value <= 255:
            problems.append(Problem(path, f"pixel value {value} outside 1..255"))
        if e["relative_saturation"] and not 0 < threshold <= 1:
            problems.append(
                Problem(
                    path,
                    f"{e['defect_name']}: relative saturation_threshold {threshold} outside (0, 1]",
                )
            )
        elif not e["relative_saturation"] and threshold <= 0:
            problems.append(
                Problem(path, f"{e['defect_name']}: absolute saturation_threshold must be > 0")
            )
        values.add(value)
    return values


def validate_loco(cat: Path) -> list[Problem]:
    problems: list[Problem] = []
    sizes: dict[Path, tuple[int, int]] = {}
    _check_good_split(cat, "train", problems, required=True, sizes=sizes)
    _check_good_split(cat, "validation", problems, required=True, sizes=sizes)
    values = _read_config(cat, problems)
    for folder in (cat / "test", cat / "ground_truth"):
        if folder.is_dir():
            for d in sorted(p for p in folder.iterdir() if p.is_dir()):
                if d.name not in LOCO_TEST_SUBSETS:
                    problems.append(
                        Problem(
                            d,
                            "unexpected folder (LOCO has good, logical_anomalies, "
                            "structural_anomalies)",
                        )
                    )
    for subset, label in LOCO_TEST_SUBSETS.items():
        folder = cat / "test" / subset
        if not folder.is_dir():
            problems.append(Problem(folder, "missing test split folder"))
            continue
        gt_root = cat / "ground_truth" / subset
        stems = set()
        for img_path in list_images(folder):
            stems.add(img_path.stem)
            img = _open(img_path, problems, sizes)
            if label == "good":
                continue
            masks = list_images(gt_root / img_path.stem)
            if not masks:
                problems.append(
                    Problem(
                        img_path,
                        f"image without masks (save one PNG per defect region in "
                        f"{gt_root / img_path.stem}/: 000.png, 001.png, ...)",
                        NO_MASKS,
                    )
                )
            for m in masks:
                arr = _open(m, problems)
                if arr is None:
                    continue
                if img is not None and arr.shape[:2] != img.shape[:2]:
                    problems.append(
                        Problem(
                            m,
                            f"mask size {arr.shape[1]}x{arr.shape[0]} differs "
                            f"from its image {img.shape[1]}x{img.shape[0]}",
                        )
                    )
                nz = (
                    np.unique(arr[arr > 0])
                    if arr.ndim == 2
                    else np.unique(arr[..., 0][arr[..., 0] > 0])
                )
                if nz.size == 0:
                    problems.append(Problem(m, "empty mask (no non-zero pixel)"))
                elif nz.size > 1:
                    problems.append(
                        Problem(
                            m,
                            f"several pixel values {nz.tolist()} in one region "
                            "mask (one PNG is one defect)",
                        )
                    )
                elif values is not None and int(nz[0]) not in values:
                    listed = ", ".join(map(str, sorted(values))) or "none"
                    problems.append(
                        Problem(
                            m,
                            f"pixel value {int(nz[0])} absent from defects_config.json "
                            f"(it lists {listed})",
                        )
                    )
        if gt_root.is_dir():
            for d in sorted(p for p in gt_root.iterdir() if p.is_dir()):
                if d.name not in stems:
                    problems.append(
                        Problem(d, f"mask without image (no test/{subset}/{d.name}.png)")
                    )
    return problems + _size_problems(sizes)


def validate_mvtec(cat: Path) -> list[Problem]:
    problems: list[Problem] = []
    sizes: dict[Path, tuple[int, int]] = {}
    _check_good_split(cat, "train", problems, required=True, sizes=sizes)
    test = cat / "test"
    if not test.is_dir():
        problems.append(Problem(test, "missing split folder"))
        return problems
    for sub in sorted(p for p in test.iterdir() if p.is_dir()):
        gt = cat / "ground_truth" / sub.name
        stems = set()
        for img_path in list_images(sub):
            stems.add(img_path.stem)
            img = _open(img_path, problems, sizes)
            if sub.name == "good":
                continue
            mask = mvtec_mask_path(cat, sub.name, img_path.stem)
            if not mask.exists():
                problems.append(
                    Problem(img_path, f"image without masks (expected {mask})", NO_MASKS)
                )
                continue
            arr = _open(mask, problems)
            if arr is not None and img is not None and arr.shape[:2] != img.shape[:2]:
                problems.append(
                    Problem(
                        mask,
                        f"mask size {arr.shape[1]}x{arr.shape[0]} differs "
                        f"from its image {img.shape[1]}x{img.shape[0]}",
                    )
                )
        if gt.is_dir():
            for m in list_images(gt):
                if m.stem.removesuffix("_mask") not in stems:
                    problems.append(Problem(m, "mask without image"))
    return problems + _size_problems(sizes)


def validate(path: str | Path, progress: bool = False) -> list[Problem]:
    """All problems of a category folder or of a dataset root holding several categories."""
    path = Path(path)
    if not path.is_dir():
        return [Problem(path, "no such folder")]

    def is_category(p: Path) -> bool:
        return (p / "train").is_dir() or (p / "test").is_dir()

    cats = (
        [path]
        if is_category(path)
        else sorted(p for p in path.iterdir() if p.is_dir() and is_category(p))
    )
    if not cats:
        return [Problem(path, "no category folders found (a category has train/ and test/)")]
    problems: list[Problem] = []
    for cat in tqdm(cats, desc="checking", unit="category", disable=not progress, leave=False):
        fmt = detect_format(cat)
        problems += validate_loco(cat) if fmt == "loco" else validate_mvtec(cat)
    return problems
