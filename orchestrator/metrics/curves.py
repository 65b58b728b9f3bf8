"""Exact pixel-level curves: pixel AUROC, the sPRO / PRO curve and its normalised area.

Sources: AU-sPRO after Bergmann et al., "Beyond Dents and Scratches: Logical Constraints in
Unsupervised Anomaly Detection and Localization", IJCV 2022, and MVTec's evaluation code for
MVTec LOCO AD (v2.0); AU-PRO after Bergmann et al., "The MVTec Anomaly Detection Dataset",
IJCV 2021 (FPR limit 0.3).

All curves here are exact: every distinct score value is a threshold (no binning, no
sampling). A pixel is predicted anomalous when its score is *strictly greater* than the
threshold, as in MVTec's evaluation code. The official LOCO script instead evaluates about
1,000 thresholds chosen by adaptive (unseeded random) refinement and joins them linearly; its
figures therefore differ from the exact ones by the discretisation error (~1e-5) and from run
to run. The exact curve is the limit the official one approximates.

Negative (normal) pixels are kept as a few sorted float32 arrays (a :class:`SortedPool`,
one array per group of images, sorted in parallel threads), so counting "negatives above t"
for many thresholds is one ``searchsorted`` with sorted keys per array. This is the only
full-size copy of the maps that the metrics make.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

#: The official MVTec LOCO FPR integration limits; 0.05 is the headline.
FPR_LIMITS = (0.01, 0.05, 0.1, 0.3, 1.0)
#: MVTec AD's FPR integration limit for AU-PRO.
PRO_LIMIT = 0.3


def _workers(n_tasks: int) -> int:
    return max(1, min(n_tasks, os.cpu_count() or 1))


def _sorted_copy_or_inplace(values: np.ndarray, in_place: bool) -> np.ndarray:
    own = (
        in_place
        and isinstance(values, np.ndarray)
        and values.dtype == np.float32
        and values.ndim == 1
        and values.base is None
        and values.flags.writeable
    )
    if own:
        values.sort()  # numpy releases the GIL while sorting: threads run in parallel
        return values
    return np.sort(np.asarray(values, dtype=np.float32).ravel())


class SortedPool:
    """Scores of a set of pixels, as sorted float32 arrays (one per group of images)."""

    def __init__(self, arrays: Iterable[np.ndarray] = (), in_place: bool = False):
        arrays = list(arrays)
        self.arrays: list[np.ndarray] = []
        if len(arrays) > 1:
            with ThreadPoolExecutor(_workers(len(arrays))) as ex:
                sorted_arrays = list(ex.map(lambda a: _sorted_copy_or_inplace(a, in_place), arrays))
        else:
            sorted_arrays = [_sorted_copy_or_inplace(a, in_place) for a in arrays]
        self.arrays = [a for a in sorted_arrays if a.size]

    def add(self, values: np.ndarray, in_place: bool = False) -> SortedPool:
        """Add a group of scores; ``in_place`` sorts a float32 array the caller gives away."""
        arr = _sorted_copy_or_inplace(values, in_place)
        if arr.size:
            self.arrays.append(arr)
        return self

    def __add__(self, other: SortedPool) -> SortedPool:
        pool = SortedPool()
        pool.arrays = self.arrays + other.arrays
        return pool

    def __len__(self) -> int:
        return sum(a.size for a in self.arrays)

    def count_below(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For ascending ``keys``: numbers of values ``< key`` and ``<= key`` (int64 each).

        One binary search per key and array; the ``<=`` count is searched again only for the
        keys that tie with a value (rare for real-valued maps).
        """
        keys = np.asarray(keys, dtype=np.float32)

        def one(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lt = np.searchsorted(a, keys, side="left")
            tie = lt < a.size
            tie[tie] = a[lt[tie]] == keys[tie]
            le = lt.copy()
            if tie.any():
                le[tie] = np.searchsorted(a, keys[tie], side="right")
            return lt, le

        lt = np.zeros(len(keys), dtype=np.int64)
        le = np.zeros(len(keys), dtype=np.int64)
        if len(self.arrays) > 1:
            with ThreadPoolExecutor(_workers(len(self.arrays))) as ex:
                parts = list(ex.map(one, self.arrays))
        else:
            parts = [one(a) for a in self.arrays]
        for a_lt, a_le in parts:
            lt += a_lt
            le += a_le
        return lt, le


def pixel_auroc(negatives: SortedPool, positives: np.ndarray) -> float:
    """Exact area under the pixel ROC curve (every distinct score a threshold, no binning).

    AUROC = P(s_pos > s_neg) + 0.5 * P(s_pos == s_neg) over all (anomalous, normal) pixel
    pairs: the Mann-Whitney statistic, equal to scikit-learn's ``roc_auc_score`` on the
    flattened arrays (ties count one half). Positives are sorted once, then counted against
    each sorted negative array; memory: one float32 copy of the positives.
    """
    pos = np.sort(np.asarray(positives, dtype=np.float32).ravel())
    n_pos, n_neg = pos.size, len(negatives)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("pixel AUROC needs both anomalous and normal pixels")
    below, below_eq = negatives.count_below(pos)
    wins = below.sum(dtype=np.int64) * 2 + (below_eq - below).sum(dtype=np.int64)
    return float(wins) / (2.0 * n_pos * n_neg)


@dataclass
class RegionScores:
    """The scores inside one ground-truth region and its saturation threshold (pixels)."""

    scores: np.ndarray
    saturation: int


def spro_curve(
    negatives: SortedPool, regions: Sequence[RegionScores]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, mean sPRO) curve, as polyline vertices sorted by FPR.

    Definition (MVTec LOCO, IJCV 2022): sPRO of region i at threshold t is
    ``min(TP_i(t) / s_i, 1)`` with TP_i(t) the region's pixels scoring > t and s_i its
    saturation threshold in pixels; the curve's y is the unweighted mean over all m regions;
    FPR(t) = normal pixels scoring > t / all normal pixels (pooled over images).

    Algorithm: only a region's top ``s_i`` pixels can change its sPRO, each adding
    ``1 / (m * s_i)`` (``min(#{x > t}, s) = #{top-s pixels > t}``), so the curve is built
    from those events alone. At each distinct event value T (descending) the curve has two
    vertices: ``(FPR(T), sPRO(T))`` and ``(FPR(T - eps), sPRO(T - eps))`` (a diagonal when
    normal pixels tie with T); between events sPRO is constant, so the segments are
    horizontal and the curve equals the one through every distinct threshold. The curve
    starts at (0, 0) (threshold +inf) and ends at FPR 1. A saturation of 0 (a relative
    threshold on a tiny region: ``int(0.5 * 1) = 0``, where the official code divides by
    zero) is treated as 1 pixel; a region with no pixels at the evaluation size counts with
    sPRO 0. PRO (MVTec AD) is the special case ``s_i = area_i``.
    """
    m = len(regions)
    n_neg = len(negatives)
    if m == 0 or n_neg == 0:
        raise ValueError("sPRO needs at least one region and one normal pixel")
    values, weights = [], []
    for r in regions:
        sc = np.asarray(r.scores, dtype=np.float32).ravel()
        if sc.size == 0:
            continue
        s = min(max(int(r.saturation), 1), sc.size)
        top = np.partition(sc, sc.size - s)[sc.size - s :] if s < sc.size else sc
        # per region: distinct values and their pixel counts, each worth count / (m * s)
        vals, counts = np.unique(top, return_counts=True)
        values.append(vals)
        weights.append(counts / np.longdouble(m * s))
    if not values:
        return np.array([0.0, 1.0]), np.array([0.0, 0.0])
    v = np.concatenate(values)
    w = np.concatenate(weights)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    first = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    uniq = v[first]  # ascending distinct event values
    gain = np.add.reduceat(w, first)  # extended precision: a perfect map sums to exactly 1
    del v, w, order
    lt, le = negatives.count_below(uniq)
    # descending thresholds from here on
    gain, lt, le = gain[::-1], lt[::-1], le[::-1]
    spro_after = np.minimum(np.cumsum(gain).astype(np.float64), 1.0)
    spro_before = np.concatenate([[0.0], spro_after[:-1]])
    fpr = np.empty(2 * uniq.size + 2)
    spro = np.empty_like(fpr)
    fpr[0], spro[0] = 0.0, 0.0
    fpr[1:-1:2], spro[1:-1:2] = (n_neg - le) / n_neg, spro_before  # scores > T
    fpr[2:-1:2], spro[2:-1:2] = (n_neg - lt) / n_neg, spro_after  # scores >= T
    fpr[-1], spro[-1] = 1.0, spro_after[-1]
    return fpr, spro


def area_under_curve(fpr: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area of ``y`` over ``fpr`` in ``[0, limit]``, divided by ``limit``.

    ``fpr`` must be non-decreasing and end at 1. When ``limit`` falls between two vertices,
    ``y`` is linearly interpolated there (as MVTec's ``trapezoid(x, y, x_max)``).
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not 0 < limit <= fpr[-1]:
        raise ValueError(f"FPR limit {limit} outside (0, {fpr[-1]}]")
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
    """Normalised area under the sPRO curve up to each FPR limit (MVTec LOCO definition).

    ``negatives``: every normal pixel of the subset (its good images and the anomalous
    images' pixels outside all regions); ``regions``: every region of the subset's anomalous
    images with its saturation threshold. See :func:`spro_curve` and :func:`area_under_curve`.
    """
    fpr, spro = spro_curve(negatives, regions)
    return {lim: area_under_curve(fpr, spro, lim) for lim in limits}


def connected_components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a binary mask, as boolean masks (MVTec AD's PRO)."""
    from scipy import ndimage

    lab, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3)))
    if n == 0:
        return []
    objects = ndimage.find_objects(lab)
    out = []
    for k, sl in enumerate(objects, start=1):
        comp = np.zeros(mask.shape, dtype=bool)
        comp[sl] = lab[sl] == k
        out.append(comp)
    return out


def au_pro(
    negatives: SortedPool, components: Sequence[np.ndarray], limit: float = PRO_LIMIT
) -> float:
    """AU-PRO as MVTec AD defines it (IJCV 2021).

    Each connected component C_k of the ground truth contributes its overlap
    ``|C_k ∩ P(t)| / |C_k|``; PRO(t) is the unweighted mean over all components of all
    images; FPR(t) over all normal pixels. The curve is integrated from FPR 0 to ``limit``
    (0.3) and divided by it. ``components``: the scores inside each component.
    """
    regions = [RegionScores(np.asarray(c), np.asarray(c).size) for c in components]
    fpr, pro = spro_curve(negatives, regions)
    return area_under_curve(fpr, pro, limit)
