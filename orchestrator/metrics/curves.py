"""Exact pixel-level curves: pixel AUROC, the sPRO / PRO curve and its normalised area.

All curves here are exact: every distinct score value is a threshold (no binning, no
sampling). A pixel is predicted anomalous when its score is *strictly greater* than the
threshold, as in MVTec's evaluation code.

Negative (normal) pixels are kept as a few sorted float32 arrays (a :class:`SortedPool`,
one array per group of images), so counting "negatives above t" for many thresholds is
one ``searchsorted`` with sorted keys per array. This is the only full-size copy made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

FPR_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)


class SortedPool:
    """Scores of a set of pixels, as sorted float32 arrays (one per group of images)."""

    def __init__(self, arrays: Iterable[np.ndarray] = ()):
        self.arrays: list[np.ndarray] = []
        for a in arrays:
            self.add(a)

    def add(self, values: np.ndarray, in_place: bool = False) -> SortedPool:
        """Add a group of scores; ``in_place`` sorts a float32 array the caller gives away."""
        arr = np.asarray(values, dtype=np.float32).ravel()
        if in_place and arr.base is None:
            arr.sort()
        else:
            arr = np.sort(arr)
        if arr.size:
            self.arrays.append(arr)
        return self

    def __add__(self, other: SortedPool) -> SortedPool:
        pool = SortedPool()
        pool.arrays = self.arrays + other.arrays
        return pool

    def __len__(self) -> int:
        return sum(a.size for a in self.arrays)

    def count_below(self, keys: np.ndarray, inclusive: bool = False) -> np.ndarray:
        """For sorted ascending ``keys``: number of values ``< key`` (``<=`` if inclusive)."""
        side = "right" if inclusive else "left"
        out = np.zeros(len(keys), dtype=np.int64)
        for a in self.arrays:
            out += np.searchsorted(a, keys, side=side)
        return out


def pixel_auroc(negatives: SortedPool, positives: np.ndarray) -> float:
    """Exact area under the pixel ROC curve.

    AUROC = P(s_pos > s_neg) + 0.5 * P(s_pos == s_neg) over all (positive, negative) pixel
    pairs: the Mann-Whitney statistic, equal to scikit-learn's ``roc_auc_score`` on the
    flattened arrays (ties count one half). Positives are sorted once, then counted against
    each sorted negative array with sorted keys.
    """
    pos = np.sort(np.asarray(positives, dtype=np.float32).ravel())
    n_pos, n_neg = pos.size, len(negatives)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("pixel AUROC needs both anomalous and normal pixels")
    below = negatives.count_below(pos)
    below_eq = negatives.count_below(pos, inclusive=True)
    wins = below.sum(dtype=np.int64) * 2 + (below_eq - below).sum(dtype=np.int64)
    return float(wins) / (2.0 * n_pos * n_neg)


@dataclass
class RegionScores:
    """The scores inside one ground-truth region and its saturation threshold (pixels)."""

    scores: np.ndarray
    saturation: int


def spro_curve(negatives: SortedPool, regions: Sequence[RegionScores]) -> tuple[np.ndarray, ...]:
    """Exact (FPR, mean sPRO) curve, as polyline vertices sorted by FPR.

    sPRO of region i at threshold t: ``min(TP_i(t) / s_i, 1)``; the mean is unweighted over
    regions; FPR(t) = negatives above t / all negatives. Only a region's top ``s_i`` pixels
    can change its sPRO, each adding ``1 / (m * s_i)`` (m regions), so the curve is built
    from those events alone. At each distinct event value T (descending) the curve has two
    vertices: ``(FPR just above T, sPRO before T)`` and ``(FPR at T inclusive, sPRO after T)``
    (a diagonal when negatives tie with T); between events it is horizontal. A saturation
    of 0 (a relative threshold on a tiny region) is treated as 1 pixel.
    PRO (MVTec AD) is the special case ``s_i = area_i``.
    """
    m = len(regions)
    n_neg = len(negatives)
    if m == 0 or n_neg == 0:
        raise ValueError("sPRO needs at least one region and one normal pixel")
    values, weights = [], []
    for r in regions:
        s = max(int(r.saturation), 1)
        sc = np.asarray(r.scores, dtype=np.float32).ravel()
        s = min(s, sc.size) if sc.size else s
        if sc.size == 0:
            continue
        top = np.partition(sc, sc.size - s)[sc.size - s :] if s < sc.size else sc
        values.append(top)
        weights.append(np.full(top.size, 1.0 / (m * s)))
    v = np.concatenate(values)
    w = np.concatenate(weights)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    uniq, start = np.unique(v, return_index=True)
    gain = np.add.reduceat(w, start)  # sPRO gained at each distinct value (ascending)
    # descending thresholds
    uniq, gain = uniq[::-1], gain[::-1]
    spro_after = np.minimum(np.cumsum(gain), 1.0)
    spro_before = np.concatenate([[0.0], spro_after[:-1]])
    keys = uniq[::-1]  # ascending keys for the pool
    above = (n_neg - negatives.count_below(keys, inclusive=True))[::-1]  # > T
    above_eq = (n_neg - negatives.count_below(keys))[::-1]  # >= T
    fpr = np.empty(2 * len(uniq) + 2)
    spro = np.empty_like(fpr)
    fpr[0], spro[0] = 0.0, 0.0
    fpr[1:-1:2], spro[1:-1:2] = above / n_neg, spro_before
    fpr[2:-1:2], spro[2:-1:2] = above_eq / n_neg, spro_after
    fpr[-1], spro[-1] = 1.0, spro_after[-1]
    return fpr, spro


def area_under_curve(fpr: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area of ``y`` over ``fpr`` in ``[0, limit]``, divided by ``limit``.

    ``fpr`` must be non-decreasing. When ``limit`` falls between two vertices, ``y`` is
    linearly interpolated there (as MVTec's ``trapezoid(x, y, x_max)``).
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = fpr <= limit
    x_in, y_in = fpr[inside], y[inside]
    if x_in[-1] < limit:
        j = int(np.searchsorted(fpr, limit, side="right"))
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], y[j - 1], y[j]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        x_in = np.append(x_in, limit)
        y_in = np.append(y_in, y_lim)
    return float(np.sum((x_in[1:] - x_in[:-1]) * (y_in[1:] + y_in[:-1]) / 2.0) / limit)


def au_spro(
    negatives: SortedPool, regions: Sequence[RegionScores], limits: Sequence[float] = FPR_LIMITS
) -> dict[float, float]:
    """Normalised area under the sPRO curve up to each FPR limit (MVTec LOCO definition)."""
    fpr, spro = spro_curve(negatives, regions)
    return {lim: area_under_curve(fpr, spro, lim) for lim in limits}
