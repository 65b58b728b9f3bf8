"""Procedural LOCO-format categories: the embedded default dataset.

Two categories modelled on the thesis, written in exact MVTec LOCO AD layout so the same
loader, validator and metrics read them:

- ``flat_connector``: a galvanised plate with a 2 x 4 grid of drilled holes, on dark cloth.
  Logical: missing hole, extra hole, wrong-size hole. Structural: deep scratch, edge damage,
  cut-off corner.
- ``pushpins``: a compartment box (2 x 3 compartments), one pin per compartment. Logical:
  missing pin (region: the whole compartment, saturated by one pin's area), extra pin.
  Structural: broken pin head, bent pin.

Normal images vary in pose (shift, rotation), lighting (gain, gradient) and sensor noise;
anomalies vary in size and place. Deterministic per seed.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from orchestrator.paths import cache_dir

GENERATOR_VERSION = "v2"
CATEGORIES = ("flat_connector", "pushpins")
DEFAULT_SIZE = (192, 256)  # (H, W)

Shape = Callable[[ImageDraw.ImageDraw, float], None]


@dataclass(frozen=True)
class Counts:
    train: int = 40
    validation: int = 10
    good: int = 20
    logical: int = 20
    structural: int = 20


# --------------------------------------------------------------------------- geometry
class Pose:
    """Rigid pose of the part in the image (scale s relative to a 256-px-wide canvas)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], jitter: bool = True):
        h, w = size
        self.cx = w / 2 + (rng.uniform(-0.03, 0.03) * w if jitter else 0.0)
        self.cy = h / 2 + (rng.uniform(-0.03, 0.03) * h if jitter else 0.0)
        self.angle = math.radians(rng.uniform(-4, 4) if jitter else 0.0)
        self.s = min(h, w) / 192.0

    def pt(self, x: float, y: float) -> tuple[float, float]:
        """Part coordinates (origin at the part's centre, canvas px at s=1) to image px."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = x * self.s, y * self.s
        return self.cx + c * x - s * y, self.cy + s * x + c * y

    def r(self, radius: float) -> float:
        return radius * self.s


def _disk(draw: ImageDraw.ImageDraw, center: tuple[float, float], r: float, fill) -> None:
    cx, cy = center
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)


def _mask(size: tuple[int, int], paint: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
    im = Image.new("L", (size[1], size[0]), 0)
    paint(ImageDraw.Draw(im))
    return np.asarray(im) > 0


# --------------------------------------------------------------------------- textures
def _lowres_noise(rng: np.random.Generator, size: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise (std ~1): Gaussian noise on a coarse grid, upsampled bilinearly."""
    h, w = size
    coarse = rng.normal(0, 1, (max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.float64)


def _cloth(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Dark woven cloth: a fine weave, coarse mottling and a little per-pixel noise."""
    h, w = size
    weave = np.sin(np.arange(w)[None, :] * 1.3) * np.sin(np.arange(h)[:, None] * 1.3)
    cloth = 38 + 7 * _lowres_noise(rng, size, 6) + 5 * weave + rng.normal(0, 1.5, (h, w))
    return cloth[..., None] * np.array([0.9, 0.95, 1.1])


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lighting (gain and a linear gradient) and sensor noise (grey), then uint8."""
    h, w = img.shape[:2]
    gain = rng.uniform(0.88, 1.12)
    gx, gy = rng.uniform(-0.08, 0.08, 2)
    grad = 1 + gx * np.linspace(-1, 1, w)[None, :] + gy * np.linspace(-1, 1, h)[:, None]
    out = img * gain * grad[..., None] + rng.normal(0, 1.5, (h, w, 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def _paint(img: np.ndarray, mask: np.ndarray, color, noise: float, rng) -> None:
    """Fill ``mask`` with ``color`` plus mottling (coarse) and speckle (fine) of ``noise`` std."""
    texture = noise * (0.8 * _lowres_noise(rng, mask.shape, 8) + 0.6 * rng.normal(0, 1, mask.shape))
    img[mask] = np.asarray(color, dtype=np.float64) + texture[mask][:, None]


# --------------------------------------------------------------------------- flat connector
PLATE_W, PLATE_H, HOLE_R = 170.0, 110.0, 9.0
# (name, pixel value, saturation threshold, relative). Absolute thresholds are areas in part
# units (scaled to pixels at write time): a missing hole is found once one hole's area is hit.
FLAT_DEFECTS = [
    ("missing_hole", 1, round(math.pi * HOLE_R**2), False),
    ("extra_hole", 2, 1.0, True),
    ("wrong_size_hole", 3, 0.5, True),
    ("scratch", 4, 1.0, True),
    ("edge_damage", 5, 1.0, True),
    ("cut_corner", 6, 1.0, True),
]
HOLES = [(-60 + 40 * i, -25 + 50 * j) for j in range(2) for i in range(4)]


def _flat_connector(
    rng: np.random.Generator, size: tuple[int, int], kind: str | None
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One image of the flat connector; ``kind`` None = good. Returns image and regions."""
    pose = Pose(rng, size)
    cloth = _cloth(rng, size)
    img = cloth.copy()
    corners = [
        (-PLATE_W / 2, -PLATE_H / 2),
        (PLATE_W / 2, -PLATE_H / 2),
        (PLATE_W / 2, PLATE_H / 2),
        (-PLATE_W / 2, PLATE_H / 2),
    ]
    plate_poly = [pose.pt(*c) for c in corners]
    plate = _mask(size, lambda d: d.polygon(plate_poly, fill=1))
    regions: list[tuple[int, np.ndarray]] = []
    hole_r = {i: HOLE_R for i in range(len(HOLES))}
    extra: list[tuple[float, float, float]] = []

    if kind == "cut_corner":
        ci = int(rng.integers(4))
        cut = rng.uniform(18, 34)
        sx, sy = np.sign(corners[ci][0]), np.sign(corners[ci][1])
        x0, y0 = corners[ci]
        tri = [pose.pt(x0, y0), pose.pt(x0 - sx * cut, y0), pose.pt(x0, y0 - sy * cut)]
        region = _mask(size, lambda d: d.polygon(tri, fill=1)) & plate
        plate &= ~region
        regions.append((6, region))
    if kind == "edge_damage":
        side = int(rng.integers(4))
        t = rng.uniform(-0.35, 0.35)
        ex, ey = [
            (t * PLATE_W, -PLATE_H / 2),
            (PLATE_W / 2, t * PLATE_H),
            (t * PLATE_W, PLATE_H / 2),
            (-PLATE_W / 2, t * PLATE_H),
        ][side]
        rr = pose.r(rng.uniform(7, 13))
        region = _mask(size, lambda d: _disk(d, pose.pt(ex, ey), rr, 1)) & plate
        plate &= ~region
        regions.append((5, region))

    _paint(img, plate, (178, 182, 186), 7, rng)  # galvanised speckle

    if kind == "missing_hole":
        for i in rng.choice(len(HOLES), size=int(rng.integers(1, 3)), replace=False):
            hole_r[int(i)] = 0.0
            c = pose.pt(*HOLES[int(i)])
            regions.append((1, _mask(size, lambda d, c=c: _disk(d, c, pose.r(HOLE_R + 4), 1))))
    if kind == "extra_hole":
        x = rng.uniform(-70, 70)
        y = rng.choice([-50.0, 0.0, 48.0]) + rng.uniform(-3, 3)
        extra.append((x, y, HOLE_R * rng.uniform(0.8, 1.2)))
    if kind == "wrong_size_hole":
        i = int(rng.integers(len(HOLES)))
        hole_r[i] = HOLE_R * rng.choice([rng.uniform(0.45, 0.6), rng.uniform(1.45, 1.7)])
        big = max(hole_r[i], HOLE_R)
        c = pose.pt(*HOLES[i])
        regions.append((3, _mask(size, lambda d: _disk(d, c, pose.r(big), 1))))

    holes = _mask(
        size,
        lambda d: (
            [_disk(d, pose.pt(*HOLES[i]), pose.r(r), 1) for i, r in hole_r.items() if r > 0]
            + [_disk(d, pose.pt(x, y), pose.r(r), 1) for x, y, r in extra]
        ),
    )
    img[holes] = cloth[holes] * 0.8
    for x, y, r in extra:
        regions.append(
            (2, _mask(size, lambda d, x=x, y=y, r=r: _disk(d, pose.pt(x, y), pose.r(r), 1)))
        )

    if kind == "scratch":
        x0, y0 = rng.uniform(-70, 20), rng.uniform(-45, 45)
        length, ang = rng.uniform(45, 90), rng.uniform(0, math.pi)
        x1, y1 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
        width = max(2, int(round(pose.r(rng.uniform(2.5, 4)))))
        line = _mask(
            size, lambda d: d.line([pose.pt(x0, y0), pose.pt(x1, y1)], fill=1, width=width)
        )
        region = line & plate & ~holes
        img[region] = rng.choice([40.0, 245.0])
        regions.append((4, region))
    return img, regions


# --------------------------------------------------------------------------- pushpins
BOX_W, BOX_H, PIN_R = 180.0, 120.0, 9.5
# a missing pin: the region is the whole compartment, saturated by the area of one pin head
PIN_DEFECTS = [
    ("missing_pin", 1, round(math.pi * PIN_R**2), False),
    ("extra_pin", 2, 1.0, True),
    ("broken_pin", 3, 1.0, True),
    ("bent_pin", 4, 1.0, True),
]
PIN_COLORS = [(205, 40, 40), (40, 90, 200), (230, 190, 30), (40, 160, 70)]


def _pushpins(
    rng: np.random.Generator, size: tuple[int, int], kind: str | None
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    pose = Pose(rng, size)
    img = np.empty((*size, 3))
    img[:] = (70, 72, 78)
    img += 4 * _lowres_noise(rng, size, 6)[..., None] + rng.normal(0, 2, (*size, 1))
    box_poly = [
        pose.pt(x, y)
        for x, y in [
            (-BOX_W / 2, -BOX_H / 2),
            (BOX_W / 2, -BOX_H / 2),
            (BOX_W / 2, BOX_H / 2),
            (-BOX_W / 2, BOX_H / 2),
        ]
    ]
    box = _mask(size, lambda d: d.polygon(box_poly, fill=1))
    _paint(img, box, (214, 200, 172), 4, rng)
    cw, ch = BOX_W / 3, BOX_H / 2
    centers = [
        (-BOX_W / 2 + cw * (i + 0.5), -BOX_H / 2 + ch * (j + 0.5))
        for j in range(2)
        for i in range(3)
    ]
    walls = _mask(
        size,
        lambda d: (
            [
                d.line(
                    [
                        pose.pt(-BOX_W / 2 + cw * i, -BOX_H / 2),
                        pose.pt(-BOX_W / 2 + cw * i, BOX_H / 2),
                    ],
                    fill=1,
                    width=max(2, int(pose.r(3))),
                )
                for i in range(4)
            ]
            + [
                d.line(
                    [
                        pose.pt(-BOX_W / 2, -BOX_H / 2 + ch * j),
                        pose.pt(BOX_W / 2, -BOX_H / 2 + ch * j),
                    ],
                    fill=1,
                    width=max(2, int(pose.r(3))),
                )
                for j in range(3)
            ]
        ),
    )
    img[walls] = (150, 135, 110)
    color = PIN_COLORS[int(rng.integers(len(PIN_COLORS)))]
    regions: list[tuple[int, np.ndarray]] = []
    missing = int(rng.integers(6)) if kind == "missing_pin" else None
    broken = int(rng.integers(6)) if kind == "broken_pin" else None
    bent = int(rng.integers(6)) if kind == "bent_pin" else None
    pins: list[tuple[float, float, int]] = []
    for k, (x, y) in enumerate(centers):
        if k == missing:
            cpoly = [
                pose.pt(x + dx * cw / 2 * 0.92, y + dy * ch / 2 * 0.92)
                for dx, dy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            ]
            regions.append((1, _mask(size, lambda d, p=cpoly: d.polygon(p, fill=1))))
            continue
        pins.append((x + rng.uniform(-8, 8), y + rng.uniform(-6, 6), k))
    if kind == "extra_pin":
        k = int(rng.integers(6))
        x, y = centers[k]
        px, py, _ = next(p for p in pins if p[2] == k)
        ox = px + (14 if px < x else -14)
        pins.append((ox, py + rng.uniform(-5, 5), -1))
    for x, y, k in pins:
        ang = rng.uniform(0, 2 * math.pi)
        nl = 14.0
        width = max(2, int(round(pose.r(2.5))))
        if k == bent:  # a long needle kinked sideways, thicker where it is deformed
            ang_b = ang + rng.choice([-1, 1]) * rng.uniform(1.3, 1.9)
            mid = (x + 7 * math.cos(ang), y + 7 * math.sin(ang))
            blen = rng.uniform(18, 24)
            end = (mid[0] + blen * math.cos(ang_b), mid[1] + blen * math.sin(ang_b))
            pts = [pose.pt(x, y), pose.pt(*mid), pose.pt(*end)]
            width = max(3, int(round(pose.r(4.5))))
        else:
            pts = [pose.pt(x, y), pose.pt(x + nl * math.cos(ang), y + nl * math.sin(ang))]
        needle = _mask(size, lambda d, p=pts, w=width: d.line(p, fill=1, width=w, joint="curve"))
        img[needle] = (62, 64, 72)
        head = _mask(size, lambda d, x=x, y=y: _disk(d, pose.pt(x, y), pose.r(PIN_R), 1))
        if k == broken:  # a piece of the head broken off and lying next to the pin
            chord = rng.uniform(-0.4, 0.1) * PIN_R
            a = rng.uniform(0, 2 * math.pi)
            yy, xx = np.mgrid[: size[0], : size[1]]
            cx, cy = pose.pt(x, y)
            proj = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
            lost = head & (proj > pose.r(chord))
            head &= ~lost
            shift = pose.r(rng.uniform(8, 12))
            dy, dx = int(round(shift * math.sin(a))), int(round(shift * math.cos(a)))
            piece = np.roll(lost, (dy, dx), axis=(0, 1)) & ~head
            img[lost] = (214, 200, 172)
            img[head] = color
            img[piece] = np.array(color) * 0.75
            crack = _mask(size, lambda d, x=x, y=y: _disk(d, pose.pt(x, y), pose.r(PIN_R + 1), 1))
            regions.append((3, crack | piece))
            continue
        img[head] = np.array(color) + rng.normal(0, 6, 3)
        if k == bent:
            regions.append(
                (
                    4,
                    _mask(
                        size,
                        lambda d, p=pts, w=width + 2: d.line(p, fill=1, width=w, joint="curve"),
                    ),
                )
            )
        if k == -1:
            regions.append((2, head | needle))
    return img, regions


GENERATORS = {
    "flat_connector": (
        _flat_connector,
        FLAT_DEFECTS,
        ["missing_hole", "extra_hole", "wrong_size_hole"],
        ["scratch", "edge_damage", "cut_corner"],
    ),
    "pushpins": (_pushpins, PIN_DEFECTS, ["missing_pin", "extra_pin"], ["broken_pin", "bent_pin"]),
}


# --------------------------------------------------------------------------- writing
def _save(img: np.ndarray, path: Path, blur: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(0.6))
    im.save(path, optimize=False)


def generate_category(
    out_dir: Path,
    name: str,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    counts: Counts = Counts(),
    progress: bool = False,
) -> Path:
    """Write one synthetic category in MVTec LOCO AD layout to ``out_dir/name``."""
    if name not in GENERATORS:
        raise ValueError(f"unknown synthetic category {name!r} (known: {', '.join(GENERATORS)})")
    make, defects, logical, structural = GENERATORS[name]
    ids = {d[0]: d[1] for d in defects}
    root = Path(out_dir) / name
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    total = counts.train + counts.validation + counts.good + counts.logical + counts.structural
    bar = tqdm(total=total, desc=f"synth {name}", unit="img", disable=not progress, leave=False)
    for split, n in (
        ("train", counts.train),
        ("validation", counts.validation),
        ("test", counts.good),
    ):
        for i in range(n):
            img, _ = make(rng, size, None)
            _save(_finish(rng, img), root / split / "good" / f"{i:03d}.png")
            bar.update()
    for subset, kinds, n in (
        ("logical_anomalies", logical, counts.logical),
        ("structural_anomalies", structural, counts.structural),
    ):
        for i in range(n):
            kind = kinds[i % len(kinds)]
            for _attempt in range(50):  # redraw the rare anomaly that vanishes at small sizes
                img, regions = make(rng, size, kind)
                if regions and all(r.any() for _, r in regions):
                    break
            else:
                raise RuntimeError(f"{name}: could not place a {kind} at size {size}")
            assert all(v == ids[kind] for v, _ in regions), (name, kind)
            _save(_finish(rng, img), root / "test" / subset / f"{i:03d}.png")
            for j, (value, region) in enumerate(regions):
                mask = region.astype(np.uint8) * value
                _save(
                    mask, root / "ground_truth" / subset / f"{i:03d}" / f"{j:03d}.png", blur=False
                )
            bar.update()
    bar.close()
    scale = min(size) / 192.0  # Pose.s: part units -> pixels
    config = [
        {
            "defect_name": d,
            "pixel_value": v,
            # absolute thresholds are given in part units^2 and scaled to this image size
            "saturation_threshold": t if rel else round(t * scale * scale),
            "relative_saturation": rel,
        }
        for d, v, t, rel in defects
    ]
    (root / "defects_config.json").write_text(json.dumps(config, indent=2))
    return root


def generate(
    out_dir: str | Path,
    categories: Sequence[str] = CATEGORIES,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    counts: Counts | None = None,
    *,
    n_train: int | None = None,
    n_validation: int | None = None,
    n_good: int | None = None,
    n_logical: int | None = None,
    n_structural: int | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write the given synthetic categories under ``out_dir``; returns their folders.

    ``size`` is ``(H, W)``. Image counts come from ``counts`` (default :class:`Counts`), each
    overridable by ``n_train``, ``n_validation``, ``n_good`` (good test images),
    ``n_logical`` and ``n_structural``. ``progress`` shows a tqdm bar per category.
    """
    counts = counts or Counts()
    overrides = {
        "train": n_train,
        "validation": n_validation,
        "good": n_good,
        "logical": n_logical,
        "structural": n_structural,
    }
    counts = replace(counts, **{k: v for k, v in overrides.items() if v is not None})
    return [
        generate_category(Path(out_dir), c, seed, tuple(size), counts, progress) for c in categories
    ]


def synthetic_cache_path(
    seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE, counts: Counts | None = None
) -> Path:
    """Cache folder of a synthetic dataset: ``<cache>/synthetic/<version>-seed<N>`` for the
    default size and counts, with a ``-<H>x<W>-<counts>`` suffix otherwise."""
    name = f"{GENERATOR_VERSION}-seed{seed}"
    counts = counts or Counts()
    if tuple(size) != DEFAULT_SIZE or counts != Counts():
        c = counts
        name += f"-{size[0]}x{size[1]}-{c.train}-{c.validation}-{c.good}-{c.logical}-{c.structural}"
    return cache_dir() / "synthetic" / name


def ensure_synthetic(
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    counts: Counts | None = None,
    progress: bool = False,
) -> Path:
    """The synthetic dataset in the cache, generated on first use.

    Written to a temporary folder next to the target and renamed into place, so an
    interrupted run or a concurrent one never leaves a half-written dataset behind.
    """
    target = synthetic_cache_path(seed, size, counts)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        generate(tmp, seed=seed, size=size, counts=counts, progress=progress)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
