"""Where the part is in an image, for the ``mask-background`` preprocessing step.

Two ways, per category:

- **given**: a ``roi.png`` (a mask at the category's image size; non-zero = the object) or a
  ``roi.json`` in the category folder, one of ``{"box": [x0, y0, x1, y1]}`` (pixels, x to the
  right and y down, ``x1``/``y1`` exclusive) or ``{"polygon": [[x, y], ...]}`` (three points
  or more): the same region in every image (a fixed camera and fixture).
- **found**: the largest bright component against a dark background (the thesis' part on
  black cloth), per image, with its interior holes filled (a drilled hole belongs to the
  part). The grey-level threshold is chosen once per category by Otsu's method on its
  ``train/good`` images only, never on validation or test images; applying it to every image
  is then a fixed transform of that image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.errors import UserError

ROI_FILES = ("roi.png", "roi.json")
#: at most this many train images (evenly spread) feed the Otsu histogram
THRESHOLD_IMAGES = 200
#: the object found on the median train image must cover this share of it
MIN_AREA, MAX_AREA = 0.005, 0.95
#: and Otsu's separability of their grey levels be at least this (part on plain cloth: > 0.9)
MIN_SEPARABILITY = 0.8


def roi_file(category_dir: Path) -> Path | None:
    """The category's ``roi.png`` or ``roi.json`` (None: neither); both is an error."""
    found = [category_dir / n for n in ROI_FILES if (category_dir / n).is_file()]
    if len(found) > 1:
        raise UserError(f"{category_dir}: both roi.png and roi.json; keep one of them")
    return found[0] if found else None


def read_roi(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The region of ``roi.png`` / ``roi.json`` as a bool mask of ``size=(H, W)``; any
    problem with the file is one UserError naming it."""
    h, w = size
    if path.suffix == ".png":
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except Exception as exc:  # noqa: BLE001 - any decoder error is the user's file
            raise UserError(f"{path}: unreadable mask ({type(exc).__name__}: {exc})") from exc
        mask = (arr[..., 0] if arr.ndim == 3 else arr) > 0
        if mask.shape != (h, w):
            raise UserError(
                f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the category's images are "
                f"{w}x{h}"
            )
    else:
        mask = _roi_json(path, h, w)
    if not mask.any():
        raise UserError(f"{path}: the region is empty (no pixel of a {w}x{h} image inside it)")
    return mask


def _roi_json(path: Path, h: int, w: int) -> np.ndarray:
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(spec, dict) or len(set(spec) & {"box", "polygon"}) != 1 or len(spec) != 1:
        raise UserError(
            f'{path}: expected {{"box": [x0, y0, x1, y1]}} or {{"polygon": [[x, y], ...]}}'
        )
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    if "box" in spec:
        box = _numbers(path, spec["box"], "box")
        if len(box) != 4:
            raise UserError(f"{path}: box must be [x0, y0, x1, y1], got {spec['box']!r}")
        x0, y0, x1, y1 = box
        if not (x0 < x1 and y0 < y1):
            raise UserError(f"{path}: box needs x0 < x1 and y0 < y1, got {spec['box']!r}")
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise UserError(f"{path}: box {spec['box']!r} lies outside the {w}x{h} images")
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=1)
    else:
        points = spec["polygon"]
        if not isinstance(points, list) or len(points) < 3:
            raise UserError(f"{path}: polygon needs three [x, y] points or more")
        pts = []
        for p in points:
            xy = _numbers(path, p, "polygon point")
            if len(xy) != 2:
                raise UserError(f"{path}: polygon point must be [x, y], got {p!r}")
            pts.append((xy[0], xy[1]))
        draw.polygon(pts, fill=1)
    return np.asarray(im) > 0


def _numbers(path: Path, value, what: str) -> list[float]:
    ok = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value
    )
    if not ok:
        raise UserError(f"{path}: {what} must be a list of numbers, got {value!r}")
    return [float(v) for v in value]


def gray(path: Path) -> np.ndarray:
    """An image as 8-bit grey levels (the mean of its RGB channels, 16-bit data scaled)."""
    from orchestrator.data.types import read_rgb

    return read_rgb(path).mean(axis=2)


def otsu(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold of grey levels in 0..255, the level between the two classes
    (``> threshold`` is foreground) that maximises their between-class variance, and its
    separability (between-class / total variance, 0..1: near 1 for a part on a plain
    background, about 0.64 for one unimodal spread of levels)."""
    hist = np.bincount(np.clip(np.rint(values), 0, 255).astype(np.int64).ravel(), minlength=256)
    p = hist / max(1, hist.sum())
    levels = np.arange(256)
    omega = np.cumsum(p)
    mu = np.cumsum(p * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    between[~np.isfinite(between)] = -1
    # the middle of the best levels: with a gap between the classes every level in it is
    # as good, and its lower edge would cut into the darker class's brightest pixels
    best = np.flatnonzero(between >= between.max() - 1e-9 * abs(between.max()))
    total = float(np.sum(p * (levels - mu[-1]) ** 2))
    eta = float(between.max()) / total if total > 0 else 0.0
    return float((best[0] + best[-1]) // 2), eta


def largest_component(image_gray: np.ndarray, threshold: float) -> np.ndarray:
    """The largest 8-connected component brighter than ``threshold``, holes filled (bool)."""
    from scipy import ndimage

    labels, n = ndimage.label(image_gray > threshold, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros(image_gray.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))


def train_threshold(category) -> float:
    """The category's foreground threshold, by Otsu's method on its ``train/good`` images
    only (at most :data:`THRESHOLD_IMAGES`, evenly spread); a UserError when the object it
    finds on the median train image is implausibly small or large (no dark background)."""
    train = list(category.train)
    picked = [train[i] for i in np.linspace(0, len(train) - 1, THRESHOLD_IMAGES).astype(int)]
    picked = list(dict.fromkeys(picked))
    grays = [gray(s.image_path) for s in picked]
    threshold, eta = otsu(np.concatenate([g.ravel() for g in grays]))
    share = float(np.median([largest_component(g, threshold).mean() for g in grays]))
    why = None
    if eta < MIN_SEPARABILITY:
        why = f"their grey levels do not split in two: Otsu separability {eta:.2f} < "
        why += f"{MIN_SEPARABILITY}"
    elif not MIN_AREA <= share <= MAX_AREA:
        why = f"at their Otsu threshold {threshold:g} the largest bright region covers "
        why += f"{100 * share:.1f}% of an image"
    if why:
        raise UserError(
            f"{category.root}: no part against a dark background found in the train images "
            f"({why}); give the part's region as roi.png or roi.json in the category folder "
            "(see README, 'The background-removal ablation')"
        )
    return threshold


def keep_region(obj: np.ndarray, margin: int) -> np.ndarray:
    """``obj`` grown by ``margin`` pixels (Euclidean): what the step keeps."""
    from scipy import ndimage

    if margin <= 0 or not obj.any():
        return obj.copy()
    return ndimage.distance_transform_edt(~obj) <= margin
