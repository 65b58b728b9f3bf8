"""Data types shared by loaders, adapters and metrics.

A :class:`Category` is one loaded category of a dataset (MVTec LOCO AD, MVTec AD or a
custom LOCO-format folder). Its splits are handed to adapters and metrics as
:class:`SampleSet` objects, which carry the *evaluation resolution*: anomaly maps,
merged masks and defect regions all live at ``eval_size`` (``(H, W)``), by default the
images' native size, as the official MVTec LOCO evaluation expects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

#: Labels of test samples. MVTec AD anomalies are labelled ``"anomaly"``.
LABELS = ("good", "logical", "structural", "anomaly")


@dataclass(frozen=True)
class DefectSpec:
    """One entry of LOCO's ``defects_config.json``."""

    name: str
    pixel_value: int
    saturation_threshold: float
    relative_saturation: bool

    def resolve(self, area: int) -> int:
        """Saturation threshold in pixels for a region of ``area`` pixels.

        As MVTec LOCO's evaluation (v2.0) does: relative -> ``int(fraction * area)``,
        absolute -> ``min(threshold, area)``.
        """
        if self.relative_saturation:
            return int(self.saturation_threshold * area)
        return int(min(self.saturation_threshold, area))


@dataclass
class Region:
    """One annotated defect region (one ground-truth PNG in LOCO) at some resolution."""

    mask: np.ndarray  # bool [H, W]
    defect_id: int
    defect_name: str
    saturation: int  # resolved saturation threshold in pixels at this resolution

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _to_8bit_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB. Integer images of more than 8 bits (``I;16``, ``I``: 16-bit
    PNG / TIFF, common from industrial cameras) are scaled from the 16-bit range to 0-255
    (``convert("RGB")`` would clip them to white; 12-bit data stored unshifted comes out
    dark, not wrong); 32-bit values beyond it from the 32-bit range; float images (``F``)
    from 0-1, or 0-255 when larger."""
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            top = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
        else:
            top = float(2**32 - 1) if arr.size and arr.max() > 65535 else 65535.0
        gray = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))
    return im.convert("RGB")


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as RGB uint8 ``[H, W, 3]`` (16-bit images scaled, not clipped);
    ``size=(H, W)`` resizes bilinearly."""
    with Image.open(path) as im:
        im = _to_8bit_rgb(im)
        if size is not None and (im.height, im.width) != tuple(size):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def read_gray(path: Path) -> np.ndarray:
    """Read a mask PNG as a 2-D integer array (pixel values kept)."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file without decoding its pixels."""
    with Image.open(path) as im:
        return im.height, im.width


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D mask to ``size=(H, W)``."""
    if mask.shape == tuple(size):
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255 if mask.dtype == bool else mask)
    out = np.asarray(im.resize((size[1], size[0]), Image.NEAREST))
    return out > 0 if mask.dtype == bool else out


@dataclass(frozen=True)
class Sample:
    """One image of a dataset with its ground truth (if any)."""

    image_path: Path
    image_id: str  # file stem, e.g. "000"
    split: str  # "train" | "validation" | "test"
    subset: str  # folder name: "good", "logical_anomalies", or an MVTec AD defect type
    label: str  # one of LABELS
    mask_paths: tuple[Path, ...] = ()
    category: str = ""

    @property
    def is_anomalous(self) -> bool:
        return self.label != "good"

    @property
    def key(self) -> str:
        """Stable identifier within a category, e.g. ``test/logical_anomalies/003``."""
        return f"{self.split}/{self.subset}/{self.image_id}"

    def load_image(self, size: tuple[int, int] | None = None) -> np.ndarray:
        return read_rgb(self.image_path, size)

    def native_size(self) -> tuple[int, int]:
        return image_size(self.image_path)

    def load_mask(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """Merged binary mask (union of all regions), bool ``[H, W]``; zeros for good images."""
        shape = self.native_size()
        merged = np.zeros(shape, dtype=bool)
        for p in self.mask_paths:
            m = read_gray(p) > 0
            if m.shape != shape:  # a mask at another size than its image: align, don't crash
                m = resize_mask(m, shape)
            merged |= m
        return resize_mask(merged, size) if size is not None else merged

    def load_regions(
        self, defects: Mapping[int, DefectSpec], size: tuple[int, int] | None = None
    ) -> list[Region]:
        """The separate defect regions, saturation resolved at the requested resolution.

        One mask file is one region (MVTec LOCO definition). Its non-zero pixel value is
        looked up in ``defects``; an unknown value (MVTec AD masks are 255) gives a region
        saturating at its full area. When ``size`` differs from the native size, each
        region is resized with nearest neighbour and an absolute threshold is scaled by
        the area ratio (a relative one is applied to the resized area).
        """
        regions: list[Region] = []
        native = None
        for p in self.mask_paths:
            raw = read_gray(p)
            native = raw.shape
            values = np.unique(raw[raw > 0])
            defect_id = int(values[0]) if values.size else 0
            mask = raw > 0
            spec = defects.get(defect_id)
            if size is not None and tuple(size) != mask.shape:
                mask = resize_mask(mask, size)
            area = int(mask.sum())
            if spec is None:
                sat, name = area, "anomaly"
            else:
                name = spec.name
                if spec.relative_saturation or size is None or tuple(size) == native:
                    sat = spec.resolve(area)
                else:
                    scale = (size[0] * size[1]) / (native[0] * native[1])
                    sat = int(min(round(spec.saturation_threshold * scale), area))
            regions.append(Region(mask=mask, defect_id=defect_id, defect_name=name, saturation=sat))
        return regions


@dataclass
class SampleSet(Sequence[Sample]):
    """An ordered set of samples (one split, or part of one) at an evaluation resolution."""

    samples: list[Sample]
    eval_size: tuple[int, int]  # (H, W) of anomaly maps, masks and regions
    defects: dict[int, DefectSpec] = field(default_factory=dict)
    category: str = ""

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return replace(self, samples=self.samples[idx])
        return self.samples[idx]

    def subset(self, indices: Sequence[int]) -> SampleSet:
        return replace(self, samples=[self.samples[i] for i in indices])

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])

    @property
    def is_anomalous(self) -> np.ndarray:
        return np.array([s.is_anomalous for s in self.samples], dtype=bool)

    def load_images(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """All images as uint8 ``[N, H, W, 3]``, resized to ``size`` (default: eval_size)."""
        size = tuple(size) if size is not None else self.eval_size
        out = np.empty((len(self), size[0], size[1], 3), dtype=np.uint8)
        for i, s in enumerate(self.samples):
            out[i] = s.load_image(size)
        return out

    def load_masks(self) -> np.ndarray:
        """Merged masks at eval_size, bool ``[N, H, W]``."""
        out = np.zeros((len(self), *self.eval_size), dtype=bool)
        for i, s in enumerate(self.samples):
            if s.mask_paths:
                out[i] = s.load_mask(self.eval_size)
        return out

    def load_regions(self) -> list[list[Region]]:
        """Per sample, its defect regions at eval_size (empty list for good images)."""
        return [s.load_regions(self.defects, self.eval_size) for s in self.samples]


@dataclass
class Category:
    """One loaded category: its splits, defect specs and where it came from."""

    name: str
    root: Path  # the category folder
    format: str  # "loco" | "mvtec"
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    defects: dict[int, DefectSpec] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        """Native ``(H, W)`` of the category's images (of its first train image)."""
        first = (self.train or self.test)[0]
        return first.native_size()

    def split(self, name: str, eval_size: tuple[int, int] | None = None) -> SampleSet:
        """A split (``train``, ``validation``, ``test``) as a SampleSet."""
        samples = {"train": self.train, "validation": self.validation, "test": self.test}[name]
        return SampleSet(
            samples=list(samples),
            eval_size=tuple(eval_size) if eval_size else self.image_size,
            defects=dict(self.defects),
            category=self.name,
        )
