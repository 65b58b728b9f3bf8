"""A literal AU-sPRO: a loop over thresholds and regions, after the official algorithm.

Written to be obviously right, not fast: for every threshold t (given, or every distinct
score), FPR(t) = normal pixels with score > t / all normal pixels, and the mean over regions
of min(TP_i(t) / s_i, 1); then the trapezoid integral up to the FPR limit with the sPRO value
interpolated at the limit, divided by the limit. The fast, sort-based implementation in
orchestrator.metrics must equal it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def literal_spro_curve(
    maps: np.ndarray,
    region_masks: Sequence[Sequence[np.ndarray]],
    saturations: Sequence[Sequence[int]],
    thresholds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, sPRO) at each threshold, sorted by FPR. ``maps`` [N, H, W]; per image its region
    masks and saturation thresholds (empty lists for good images)."""
    maps = np.asarray(maps, dtype=np.float32)
    normal = np.ones(maps.shape, dtype=bool)
    for i, regs in enumerate(region_masks):
        for m in regs:
            normal[i] &= ~m
    if thresholds is None:
        thresholds = np.unique(maps)
    thresholds = np.concatenate([[np.inf], np.sort(thresholds)[::-1], [-np.inf]])
    neg_scores = maps[normal]
    regions = [
        (maps[i][m], max(int(s), 1))
        for i, regs in enumerate(region_masks)
        for m, s in zip(regs, saturations[i])
    ]
    fprs, spros = [], []
    for t in thresholds:
        fprs.append(np.count_nonzero(neg_scores > t) / neg_scores.size)
        per_region = [min(np.count_nonzero(sc > t) / s, 1.0) for sc, s in regions]
        spros.append(float(np.mean(per_region)))
    return np.array(fprs), np.array(spros)


def literal_au_spro(fprs: np.ndarray, spros: np.ndarray, limit: float) -> float:
    """Trapezoid area up to ``limit`` (sPRO interpolated there), divided by ``limit``."""
    order = np.lexsort((spros, fprs))
    x, y = fprs[order], spros[order]
    area = 0.0
    for k in range(1, len(x)):
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit
