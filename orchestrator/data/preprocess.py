"""Preprocessing steps a survey or ensemble applies to every image of a category (train,
validation and test alike): ``--preprocess mask-background`` blacks out everything farther
than ``--preprocess-margin`` pixels from the part (the thesis' background-removal ablation;
where the part is: :mod:`orchestrator.data.objects`).

The step writes a preprocessed copy of the category to the cache
(``<cache>/preprocessed/<name>-<key>/<name>``, keyed by the category's fingerprint, folder,
``roi`` file and the step's parameters), so every engine, including upstream code that reads
image files itself, sees the same images. Ground truth and ``defects_config.json`` are copied
unchanged: metrics stay computed against the original masks. The copy's ``PREPROCESS.json``
says what was done; every trial on it records that as parameters and tags
(:func:`record`), and the per-image region kept lies beside the copy (:func:`kept_mask`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from orchestrator.data import objects
from orchestrator.data.types import Category, Sample
from orchestrator.errors import UserError

STEPS = ("none", "mask-background")
OBJECTS = ("auto", "largest-component", "roi")
DEFAULT_MARGIN = 8
#: the copy's record of what was done (read back by :func:`record`)
MARKER = "PREPROCESS.json"
#: part of every copy's key: a change of the step's code makes new copies
VERSION = "mask-background-v1"
#: formats the copy keeps; other images are written as PNG (lossless)
KEEP_SUFFIXES = {".png", ".tif", ".tiff", ".bmp"}


@dataclass(frozen=True)
class Preprocess:
    """A preprocessing step and its parameters (``none``: the images as they are)."""

    step: str = "none"
    margin: int = DEFAULT_MARGIN  # pixels kept around the part
    object: str = "auto"  # auto: a roi file when the category has one, else largest-component

    def check(self) -> None:
        if self.step not in STEPS:
            raise UserError(f"--preprocess must be one of {', '.join(STEPS)}, got {self.step!r}")
        if self.object not in OBJECTS:
            raise UserError(
                f"--preprocess-object must be one of {', '.join(OBJECTS)}, got {self.object!r}"
            )
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 0:
            raise UserError(f"--preprocess-margin must be an integer >= 0, got {self.margin!r}")

    @property
    def active(self) -> bool:
        return self.step != "none"

    def params(self) -> dict[str, str]:
        """What identifies the step (tags of a parent run, part of every trial's record)."""
        if not self.active:
            return {"preprocess": "none"}
        return {
            "preprocess": self.step,
            "preprocess.margin": str(self.margin),
            "preprocess.object": self.object,
        }

    @property
    def label(self) -> str:
        return label(self.params())


def from_options(opts) -> Preprocess:
    """The step of a job's options (``preprocess``, ``preprocess_margin``,
    ``preprocess_object``), checked."""
    step = Preprocess(
        getattr(opts, "preprocess", "none") or "none",
        getattr(opts, "preprocess_margin", DEFAULT_MARGIN),
        getattr(opts, "preprocess_object", "auto"),
    )
    step.check()
    return step


def label(tags: Mapping[str, str]) -> str:
    """A short name of the preprocessing a run's tags (or :func:`record`) describe:
    ``none`` (also when the tags predate the step), ``mask-background margin=8``, with
    ``object=...`` when the part was not found the default way."""
    step = tags.get("preprocess", "none") or "none"
    if step == "none":
        return "none"
    text = f"{step} margin={tags.get('preprocess.margin', '?')}"
    obj = tags.get("preprocess.object", "auto")
    return text if obj == "auto" else f"{text} object={obj}"


def record(category_root: str | Path) -> dict[str, str]:
    """What a trial on this category folder records (parameters and tags): the copy's
    ``PREPROCESS.json``, or ``{"preprocess": "none"}`` for an original folder."""
    path = Path(category_root) / MARKER
    if not path.is_file():
        return {"preprocess": "none"}
    return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}


def key_part(rec: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """What a trial key adds for a preprocessed category (nothing for ``none``, so keys of
    runs made before the step existed still match)."""
    return {} if rec.get("preprocess", "none") == "none" else {"preprocess": dict(rec)}


def check_inputs(step: Preprocess, categories: Sequence[Category]) -> None:
    """The step's per-category inputs (its ``roi`` files), read and checked: a mistake is a
    UserError before anything is written or started."""
    if step.active:
        for c in categories:
            _roi(c, step)


def _roi(category: Category, step: Preprocess) -> tuple[Path, np.ndarray] | None:
    """The category's roi file and its mask when the step uses one (None: found instead)."""
    root = Path(category.root)
    roi = objects.roi_file(root)
    if step.object == "roi" and roi is None:
        raise UserError(
            f"{root}: --preprocess-object roi needs roi.png or roi.json in the category folder"
        )
    if roi is None or step.object == "largest-component":
        return None
    return roi, objects.read_roi(roi, category.image_size)


def apply(step: Preprocess, categories: Sequence[Category], progress: bool = False):
    """``categories`` preprocessed by ``step`` (the cached copies; as they are for none)."""
    if not step.active:
        return list(categories)
    return [materialise(c, step, progress) for c in categories]


# --------------------------------------------------------------------------- the copy
def _roi_digest(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else ""


def copy_dir(category: Category, step: Preprocess) -> Path:
    """Where the preprocessed copy of ``category`` lives in the cache."""
    from orchestrator.data.fingerprint import fingerprint
    from orchestrator.paths import cache_dir

    root = Path(category.root).resolve()
    parts = {
        "version": VERSION,
        "params": step.params(),
        "fingerprint": fingerprint(category),
        "folder": str(root),
        "roi": _roi_digest(objects.roi_file(root)),
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "preprocessed" / f"{category.name}-{key}" / category.name


def kept_mask(copy_root: str | Path, sample: Sample) -> np.ndarray | None:
    """The region the step kept in ``sample``'s image (bool), None for an original folder."""
    path = Path(copy_root).parent / "kept" / sample.split / sample.subset / f"{sample.image_id}.png"
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im) > 0


def materialise(category: Category, step: Preprocess, progress: bool = False) -> Category:
    """The preprocessed copy of ``category`` (written on first use, atomically: a folder
    half-written by an interrupted run is never used), loaded."""
    from orchestrator.data.loco import load_category

    target = copy_dir(category, step)
    if not (target / MARKER).is_file():
        target.parent.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent.parent))
        try:
            _write(category, step, tmp / category.name, progress)
            try:
                tmp.rename(target.parent)
            except OSError:  # another process won the race
                if not (target / MARKER).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_category(target, category.format)


def _finder(category: Category, step: Preprocess):
    """``(how, region)``: how the part is found and ``region(sample) -> bool mask``."""
    given_roi = _roi(category, step)
    if given_roi is not None:
        roi, mask = given_roi

        def given(sample: Sample) -> np.ndarray:
            size = sample.native_size()
            if size == mask.shape:
                return mask
            from orchestrator.data.types import resize_mask

            return resize_mask(mask, size)

        return {"preprocess.object_found": roi.name}, given
    threshold = objects.train_threshold(category)  # train/good only, see objects

    def found(sample: Sample) -> np.ndarray:
        return objects.largest_component(objects.gray(sample.image_path), threshold)

    how = {"preprocess.object_found": "largest-component", "preprocess.threshold": f"{threshold:g}"}
    return how, found


def _write(category: Category, step: Preprocess, out: Path, progress: bool) -> None:
    from orchestrator.data.fingerprint import fingerprint

    how, region = _finder(category, step)
    root = Path(category.root)
    samples = [*category.train, *category.validation, *category.test]
    kept_root = out.parent / "kept"
    for s in tqdm(
        samples, desc=f"mask-background {category.name}", unit="img", disable=not progress
    ):
        keep = objects.keep_region(region(s), step.margin)
        rel = Path(s.image_path).relative_to(root)  # the samples' paths start with it
        if rel.suffix.lower() not in KEEP_SUFFIXES:
            rel = rel.with_suffix(".png")
        _masked_image(Path(s.image_path), out / rel, keep)
        kept = kept_root / s.split / s.subset / f"{s.image_id}.png"
        kept.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(keep.astype(np.uint8) * 255).save(kept, compress_level=1)
    if (root / "ground_truth").is_dir():
        shutil.copytree(root / "ground_truth", out / "ground_truth")
    if (root / "defects_config.json").is_file():
        shutil.copyfile(root / "defects_config.json", out / "defects_config.json")
    rec = {
        **step.params(),
        **how,
        "preprocess.source_fingerprint": fingerprint(category),
        "preprocess.version": VERSION,
    }
    (out / MARKER).write_text(json.dumps(rec, indent=2) + "\n")


def _masked_image(src: Path, dst: Path, keep: np.ndarray) -> None:
    """``src`` with every pixel outside ``keep`` set to black, in its own bit depth."""
    with Image.open(src) as im:
        im.load()
        if im.mode not in ("L", "LA", "RGB", "RGBA", "I;16", "I", "F"):
            im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
        arr = np.array(im)
    if arr.shape[:2] != keep.shape:
        raise UserError(f"{src}: image is {arr.shape[1]}x{arr.shape[0]}, its region differs")
    arr[~keep] = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    out = Image.fromarray(arr)
    if dst.suffix.lower() == ".png":
        out.save(dst, compress_level=1)
    else:
        out.save(dst)
