"""Anomaly-source textures for DRAEM's synthesis.

Upstream DRAEM pastes patches of the Describable Textures Dataset (DTD) into normal images.
So that the method runs with no download, :func:`procedural_textures` generates a small,
varied texture set at run time (stripes, checkerboards, fractal Perlin colour noise, dots,
waves, Voronoi-like cells, plain colour with grain); a folder of texture images (e.g. DTD's
``images/``) can be used instead via the adapter's ``texture_dir`` config
(:func:`load_texture_dir`, any ``.jpg``/``.jpeg``/``.png`` below it).

:func:`random_colour_augment` is the native counterpart of upstream's random choice of
three colour/geometry augmentations applied to each texture before pasting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from adapters.draem.perlin import perlin_noise
from orchestrator.errors import UserError

TEXTURE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _palette(rng: np.random.Generator, k: int = 2) -> np.ndarray:
    return rng.uniform(0, 255, size=(k, 3))


def _stripes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    period = rng.uniform(3, 16)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    t = (np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) + 1) / 2
    c = _palette(rng)
    return c[0] * (1 - t[..., None]) + c[1] * t[..., None]


def _checker(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cell = int(rng.integers(3, 17))
    yy, xx = np.mgrid[0:h, 0:w]
    t = ((yy // cell + xx // cell) % 2).astype(np.float64)
    c = _palette(rng)
    return c[0] * (1 - t[..., None]) + c[1] * t[..., None]


def _fractal(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((h, w, 3))
    for ch in range(3):
        amp, res, acc = 1.0, int(rng.integers(1, 5)), np.zeros((h, w))
        for _ in range(4):
            acc += amp * perlin_noise((h, w), (min(res, h), min(res, w)), rng)
            amp, res = amp * 0.5, res * 2
        out[..., ch] = acc
    out -= out.min()
    return 255 * out / max(out.max(), 1e-6)


def _dots(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c = _palette(rng)
    img = np.ones((h, w, 3)) * c[0]
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(10, 60))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, 6)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return img


def _waves(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    f = rng.uniform(0.05, 0.4, size=(3, 2))
    ph = rng.uniform(0, 2 * np.pi, size=3)
    return np.stack(
        [127.5 * (1 + np.sin(f[i, 0] * xx + f[i, 1] * yy + ph[i])) for i in range(3)], axis=-1
    )


def _cells(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(6, 30))
    pts = rng.uniform(0, 1, size=(n, 2)) * [h, w]
    colours = rng.uniform(0, 255, size=(n, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    return colours[d.argmin(axis=-1)]


def _grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    return _palette(rng, 1)[0] + rng.normal(0, rng.uniform(5, 40), size=(h, w, 3))


GENERATORS: tuple[Callable[[int, int, np.random.Generator], np.ndarray], ...] = (
    _stripes,
    _checker,
    _fractal,
    _dots,
    _waves,
    _cells,
    _grain,
)


def procedural_textures(
    n: int = 28, size: tuple[int, int] = (128, 128), seed: int = 0
) -> list[np.ndarray]:
    """``n`` procedural textures, uint8 ``[H, W, 3]``, cycling through the generator kinds."""
    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    out = []
    for i in range(n):
        img = GENERATORS[i % len(GENERATORS)](h, w, rng)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def texture_files(texture_dir: str | Path) -> list[Path]:
    """All texture image files below ``texture_dir`` (sorted); UserError when there are none."""
    root = Path(texture_dir)
    if not root.is_dir():
        raise UserError(f"texture_dir {str(root)!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXTURE_SUFFIXES)
    if not files:
        raise UserError(f"texture_dir {str(root)!r} holds no .jpg/.jpeg/.png images")
    return files


def load_texture_dir(texture_dir: str | Path, size: tuple[int, int]) -> list[np.ndarray]:
    """The folder's texture images as uint8 ``[H, W, 3]`` resized to ``size``."""
    out = []
    for p in texture_files(texture_dir):
        with Image.open(p) as im:
            im = im.convert("RGB").resize((int(size[1]), int(size[0])), Image.BILINEAR)
            out.append(np.asarray(im, dtype=np.uint8).copy())
    return out


def write_texture_set(textures: list[np.ndarray], out_dir: Path) -> list[Path]:
    """Write textures as ``out_dir/procedural/NNN.png`` (for code that reads files)."""
    folder = out_dir / "procedural"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, t in enumerate(textures):
        p = folder / f"{i:03d}.png"
        Image.fromarray(t).save(p)
        paths.append(p)
    return paths


# --- random augmentation of a texture before pasting (native counterpart of upstream) -----
def _gamma(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    g = rng.uniform(0.5, 2.0, size=3)
    return 255.0 * (x / 255.0) ** g


def _brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30)


def _sharpen(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blur = (x + np.roll(x, 1, 0) + np.roll(x, -1, 0) + np.roll(x, 1, 1) + np.roll(x, -1, 1)) / 5
    return x + rng.uniform(0.0, 2.0) * (x - blur)


def _hue_saturation(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    grey = x.mean(axis=-1, keepdims=True)
    return grey + (x - grey) * rng.uniform(0.6, 1.4) + rng.uniform(-50, 50, size=3) * 0.5


def _solarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.uniform() < 0.5:
        return x
    thr = rng.uniform(32, 128)
    return np.where(x >= thr, 255.0 - x, x)


def _posterize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bits = int(rng.integers(1, 9))
    step = 2 ** (8 - bits)
    return np.floor(np.clip(x, 0, 255) / step) * step


def _invert(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255.0 - x


def _autocontrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    return (x - lo) * 255.0 / np.maximum(hi - lo, 1e-6)


def _equalize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        ch = np.clip(x[..., c], 0, 255).astype(np.uint8)
        hist = np.bincount(ch.ravel(), minlength=256).cumsum()
        lut = 255.0 * (hist - hist.min()) / max(hist.max() - hist.min(), 1)
        out[..., c] = lut[ch]
    return out


def _rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import rotate

    return rotate(x, rng.uniform(-45, 45), axes=(0, 1), reshape=False, order=1, mode="constant")


AUGMENTATIONS = (
    _gamma,
    _brightness,
    _sharpen,
    _hue_saturation,
    _solarize,
    _posterize,
    _invert,
    _autocontrast,
    _equalize,
    _rotate,
)


def random_colour_augment(texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three distinct augmentations (of ten, in random order) applied to a uint8 texture."""
    x = texture.astype(np.float64)
    for i in rng.choice(len(AUGMENTATIONS), size=3, replace=False):
        x = np.clip(AUGMENTATIONS[int(i)](x, rng), 0, 255)
    return x.astype(np.uint8)
