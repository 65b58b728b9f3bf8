"""Perlin-noise masks for DRAEM's anomaly synthesis (our own implementation).

Perlin (gradient) noise: a lattice of random unit gradients; each pixel's value is the
smooth (quintic fade ``6t^5 - 15t^4 + 10t^3``) interpolation of the dot products between
its offsets to the four surrounding lattice corners and their gradients. DRAEM thresholds
such noise (random lattice resolution ``2^k`` per axis, ``k`` in ``[0, 6)``, rotated by a
random angle in ``[-90, 90]`` degrees) at 0.5 to obtain blob-shaped anomaly regions.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import rotate


def perlin_noise(
    shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """2-D Perlin noise of ``shape`` with ``res`` lattice cells per axis, values in ~[-1, 1]."""
    h, w = int(shape[0]), int(shape[1])
    ry, rx = max(int(res[0]), 1), max(int(res[1]), 1)
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [ry+1, rx+1, 2]
    # continuous lattice coordinates of every pixel
    ys = np.arange(h) * (ry / h)
    xs = np.arange(w) * (rx / w)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0)[:, None]  # [h, 1]
    fx = (xs - x0)[None, :]  # [1, w]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[(y0 + dy)[:, None], (x0 + dx)[None, :]]  # [h, w, 2]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)

    u, v = fade(fy), fade(fx)
    top = corner(0, 0) * (1 - v) + corner(0, 1) * v
    bottom = corner(1, 0) * (1 - v) + corner(1, 1) * v
    return np.sqrt(2.0) * (top * (1 - u) + bottom * u)


def perlin_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    min_scale: int = 0,
    max_scale: int = 6,
    threshold: float = 0.5,
    max_rotation: float = 90.0,
) -> np.ndarray:
    """A binary float32 mask ``[H, W]`` of thresholded, randomly rotated Perlin noise.

    The lattice resolution per axis is ``2**k`` with ``k`` drawn from ``[min_scale,
    max_scale)`` (DRAEM: 0..5), capped at the image size.
    """
    h, w = int(shape[0]), int(shape[1])
    ry = min(2 ** int(rng.integers(min_scale, max_scale)), h)
    rx = min(2 ** int(rng.integers(min_scale, max_scale)), w)
    noise = perlin_noise((h, w), (ry, rx), rng)
    if max_rotation > 0:
        angle = float(rng.uniform(-max_rotation, max_rotation))
        noise = rotate(noise, angle, reshape=False, order=1, mode="constant", cval=0.0)
    return (noise > threshold).astype(np.float32)
