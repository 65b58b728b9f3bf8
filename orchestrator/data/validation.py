"""The validation protocol: labelled validation images without touching the test set.

A category's validation set is its ``validation/good`` images (or, where it has none, a
held-out share of ``train/good``, which then leaves the training set), plus synthetic
anomalies made from them by a documented generator:

- **cut-paste** (after CutPaste, Li et al., CVPR 2021): a rectangle of 2-15 % of the image
  area, aspect ratio 0.3-3.3, cut from another *training* image at a random place, its
  brightness and contrast jittered by up to 20 %, pasted at another random place;
- **Perlin patch** (after DRAEM, Zavrtanik et al., ICCV 2021): a thresholded, rotated Perlin
  noise mask (adapters.draem.perlin, lattice 2^0..2^3 per axis) filled with another
  training image, flipped and colour-shifted, blended in with opacity 0.5-1.0.

Every validation good image gives one anomaly of each kind (seeded). The set is written as
an ordinary LOCO-format category (``train/good`` = the training images, ``test/good`` = the
validation good images, ``test/structural_anomalies`` with one mask each under
``ground_truth``), so every method and metric runs on it unchanged. Settings that have to be
chosen (``orchestrate choose``) are chosen on it; the real test set is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from orchestrator.data.types import Category, Sample, SampleSet, read_rgb
from orchestrator.errors import UserError

CUT_PASTE, PERLIN = 1, 2
#: Version of the protocol (training set, validation set): part of every trial's key, so a
#: result fitted or calibrated under another protocol is never reused.
PROTOCOL = "validation-v1"
DEFECTS = [
    {
        "defect_name": "synthetic_cut_paste",
        "pixel_value": CUT_PASTE,
        "saturation_threshold": 1.0,
        "relative_saturation": True,
    },
    {
        "defect_name": "synthetic_perlin_patch",
        "pixel_value": PERLIN,
        "saturation_threshold": 1.0,
        "relative_saturation": True,
    },
]


def split_validation(
    category: Category, holdout: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """``(train, validation_good)``: ``validation/good`` if the category has it, else a
    seeded ``holdout`` share of ``train/good`` (removed from the training images)."""
    if category.validation:
        return list(category.train), list(category.validation)
    if not 0 < holdout < 1:
        raise UserError(f"validation hold-out must be in (0, 1), got {holdout}")
    n = len(category.train)
    k = max(1, int(round(holdout * n)))
    if n - k < 1:
        raise UserError(f"{category.name}: too few training images ({n}) to hold out {k}")
    order = np.random.default_rng(seed).permutation(n)
    held = set(order[:k].tolist())
    train = [s for i, s in enumerate(category.train) if i not in held]
    return train, [s for i, s in enumerate(category.train) if i in held]


def cut_paste(img: np.ndarray, donor: np.ndarray, rng: np.random.Generator):
    """``(image, mask)``: a jittered rectangle of ``donor`` pasted into ``img``."""
    h, w = img.shape[:2]
    area = rng.uniform(0.02, 0.15) * h * w
    aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(3.3))))
    ph = int(np.clip(round(np.sqrt(area * aspect)), 4, h - 1))
    pw = int(np.clip(round(np.sqrt(area / aspect)), 4, w - 1))
    sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    patch = donor[sy : sy + ph, sx : sx + pw].astype(np.float32)
    gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-0.2, 0.2) * 255
    patch = np.clip((patch - patch.mean()) * gain + patch.mean() + bias, 0, 255)
    out = img.copy()
    out[ty : ty + ph, tx : tx + pw] = patch.astype(np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    mask[ty : ty + ph, tx : tx + pw] = True
    return out, mask


def perlin_patch(img: np.ndarray, donor: np.ndarray, rng: np.random.Generator):
    """``(image, mask)``: a Perlin-shaped region filled with a flipped, colour-shifted donor."""
    from adapters.draem.perlin import perlin_mask

    h, w = img.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(10):  # a mask can come out empty (or whole): draw again
        mask = perlin_mask((h, w), rng, min_scale=0, max_scale=4) > 0
        if 0.005 * h * w <= mask.sum() <= 0.3 * h * w:
            break
    else:  # fall back to a disc in the centre region
        yy, xx = np.mgrid[:h, :w]
        cy, cx, r = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7), 0.1 * min(h, w)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    src = donor[::-1, ::-1].astype(np.float32)
    src = np.clip(src * rng.uniform(0.6, 1.4, size=3) + rng.uniform(-40, 40, size=3), 0, 255)
    beta = rng.uniform(0.5, 1.0)
    out = img.astype(np.float32)
    m = mask[..., None]
    out = np.where(m, (1 - beta) * out + beta * src, out)
    return np.clip(out, 0, 255).astype(np.uint8), mask


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_validation_category(
    category: Category, out_dir: str | Path, seed: int = 0, holdout: float = 0.2
) -> Path:
    """Write the category's validation set as a LOCO-format category ``out_dir/<name>``
    (replaced if present); returns its folder."""
    train, good = split_validation(category, holdout, seed)
    root = Path(out_dir) / category.name
    if root.exists():
        shutil.rmtree(root)
    for i, s in enumerate(train):
        _link(s.image_path, root / "train" / "good" / f"{i:03d}{s.image_path.suffix}")
    for i, s in enumerate(good):
        _link(s.image_path, root / "test" / "good" / f"{i:03d}{s.image_path.suffix}")
    rng = np.random.default_rng(seed)
    anomalous = root / "test" / "structural_anomalies"
    gt = root / "ground_truth" / "structural_anomalies"
    anomalous.mkdir(parents=True, exist_ok=True)
    k = 0
    for s in good:
        img = read_rgb(s.image_path)
        for kind, make in ((CUT_PASTE, cut_paste), (PERLIN, perlin_patch)):
            donor_sample = train[int(rng.integers(0, len(train)))]
            donor = read_rgb(donor_sample.image_path, img.shape[:2])
            out, mask = make(img, donor, rng)
            Image.fromarray(out).save(anomalous / f"{k:03d}.png")
            (gt / f"{k:03d}").mkdir(parents=True, exist_ok=True)
            Image.fromarray((mask * kind).astype(np.uint8)).save(gt / f"{k:03d}" / "000.png")
            k += 1
    (root / "defects_config.json").write_text(json.dumps(DEFECTS, indent=2))
    (root / "VALIDATION.txt").write_text(
        f"Validation set of {category.name} (orchestrator.data.validation, seed {seed}): "
        f"{len(train)} training, {len(good)} good and {k} synthetic anomalous images.\n"
    )
    return root


def protocol_train(
    category: Category, holdout: float = 0.2, seed: int = 0
) -> tuple[SampleSet, list[Sample]]:
    """``(train, validation_good)``: the images a method fits on under the protocol
    (``train/good`` less the hold-out when the category has no ``validation/good``) as a
    SampleSet, and the validation good images."""
    train, good = split_validation(category, holdout, seed)
    return SampleSet(train, category.image_size, dict(category.defects), category.name), good


def _inputs_key(category: Category, seed: int, holdout: float) -> str:
    """What a validation set is made from: the category's folder, its training and
    validation images (path, size, modification time), the protocol, seed and hold-out."""
    h = hashlib.sha256(f"{PROTOCOL}\t{seed}\t{holdout}\t{category.root.resolve()}\n".encode())
    for s in sorted([*category.train, *category.validation], key=lambda s: str(s.image_path)):
        st = s.image_path.stat()
        h.update(f"{s.image_path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cached_validation_category(category: Category, seed: int = 0, holdout: float = 0.2) -> Path:
    """The category's validation set, written once into the cache
    (``<cache>/validation/<name>-<key>``, the key from :func:`_inputs_key`) and reused by
    every trial that needs it; written in a temporary folder and renamed into place, so a
    concurrent trial never reads half a set."""
    from orchestrator.paths import cache_dir

    base = cache_dir() / "validation"
    final = base / f"{category.name}-{_inputs_key(category, seed, holdout)}"
    if (final / category.name / "VALIDATION.txt").is_file():
        return final / category.name
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=base))
    try:
        write_validation_category(category, tmp, seed, holdout)
        os.rename(tmp, final)
    except OSError:  # another trial renamed its copy first (same inputs, same files)
        if not (final / category.name / "VALIDATION.txt").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / category.name


def protocol_sets(
    category: Category, out_dir: str | Path | None = None, seed: int = 0, holdout: float = 0.2
) -> tuple[SampleSet, SampleSet]:
    """``(train, validation)`` of the validation protocol for one category.

    ``train`` is ``protocol_train``'s. ``validation`` is the labelled validation set (good
    images + synthetic anomalies with masks), at the category's image size: what
    calibration, thresholds and map normalisation are fitted on. It is written under
    ``out_dir``, or (None) taken from the cache (:func:`cached_validation_category`).
    """
    from orchestrator.data.loco import load_category

    train, _ = protocol_train(category, holdout, seed)
    if out_dir is None:
        root = cached_validation_category(category, seed, holdout)
    else:
        root = write_validation_category(category, out_dir, seed, holdout)
    return train, load_category(root).split("test", category.image_size)
