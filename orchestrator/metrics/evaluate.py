"""``evaluate``: every metric of a method's predictions on a test set, in one call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from orchestrator.data.types import Region, SampleSet
from orchestrator.metrics.curves import (
    FPR_LIMITS,
    RegionScores,
    SortedPool,
    area_under_curve,
    au_spro,
    pixel_auroc,
    spro_curve,
)
from orchestrator.metrics.image import f1_max, image_auroc_by_type

PRO_LIMIT = 0.3


def _limit_key(limit: float) -> str:
    return f"{limit:g}" if limit != 1.0 else "1.0"


def evaluate_arrays(
    image_scores: np.ndarray,
    anomaly_maps: np.ndarray,
    labels: Sequence[str],
    masks: np.ndarray,
    regions: Sequence[Sequence[Region]] | None = None,
    limits: Sequence[float] = FPR_LIMITS,
) -> dict[str, float]:
    """All metrics from arrays.

    image_scores ``[N]``; anomaly_maps float ``[N, H, W]``; labels per image ("good",
    "logical", "structural", "anomaly"); masks bool ``[N, H, W]`` (merged ground truth);
    regions: per image its LOCO defect regions (for AU-sPRO; ``None`` skips sPRO).

    Keys: image_auroc (pooled), image_auroc_logical / _structural / _mean, f1_max,
    f1_threshold, pixel_auroc, au_pro (MVTec AD: connected components, FPR <= 0.3),
    au_spro_<subset>_<limit> for subsets logical / structural and au_spro_<limit>, the mean of
    the two subsets (MVTec LOCO's reported figure). Absent subsets leave their keys out.
    """
    labels = np.asarray(labels)
    scores = np.asarray(image_scores, dtype=np.float64)
    maps = np.asarray(anomaly_maps, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ")
    out = image_auroc_by_type(scores, labels)
    good = labels == "good"
    if good.any() and (~good).any():
        out["f1_max"], out["f1_threshold"] = f1_max(scores, ~good)

    # normal pixels, one sorted array per label group (shared by all pixel metrics)
    pools: dict[str, SortedPool] = {}
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        group = np.concatenate([maps[i][~masks[i]] for i in idx])
        pools[str(lab)] = SortedPool().add(group, in_place=True)
        del group
    all_neg = SortedPool()
    for pool in pools.values():
        all_neg = all_neg + pool
    if masks.any():
        out["pixel_auroc"] = pixel_auroc(all_neg, maps[masks])
        components: list[RegionScores] = []
        for i in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1)):
            lab, n = ndimage.label(masks[i], structure=np.ones((3, 3)))
            for k in range(1, n + 1):
                sc = maps[i][lab == k]
                components.append(RegionScores(sc, sc.size))
        fpr, pro = spro_curve(all_neg, components)
        out["au_pro"] = area_under_curve(fpr, pro, PRO_LIMIT)

    if regions is not None:
        per_subset: dict[str, dict[float, float]] = {}
        for kind in ("logical", "structural"):
            idx = np.flatnonzero(labels == kind)
            if idx.size == 0 or "good" not in pools:
                continue
            region_scores = [
                RegionScores(maps[i][r.mask], r.saturation) for i in idx for r in regions[i]
            ]
            if not region_scores:
                continue
            negatives = pools["good"] + pools[kind]
            per_subset[kind] = au_spro(negatives, region_scores, limits)
            for lim, v in per_subset[kind].items():
                out[f"au_spro_{kind}_{_limit_key(lim)}"] = v
        if len(per_subset) == 2:
            for lim in limits:
                out[f"au_spro_{_limit_key(lim)}"] = (
                    per_subset["logical"][lim] + per_subset["structural"][lim]
                ) / 2
        elif len(per_subset) == 1:  # one subset only: its figure is the only one there is
            (only,) = per_subset.values()
            for lim in limits:
                out[f"au_spro_{_limit_key(lim)}"] = only[lim]
    return out


def evaluate(test: SampleSet, preds, limits: Sequence[float] = FPR_LIMITS) -> dict[str, float]:
    """Every metric of ``preds`` (a :class:`adapters.base.Predictions`) on ``test``.

    Masks and LOCO regions are loaded at ``test.eval_size`` (the maps' resolution); sPRO is
    computed where the test set has LOCO defect regions (a defects config).
    """
    if len(preds.image_scores) != len(test):
        raise ValueError(f"{len(preds.image_scores)} predictions for {len(test)} test images")
    masks = test.load_masks()
    regions = test.load_regions() if test.defects else None
    return evaluate_arrays(
        preds.image_scores, preds.anomaly_maps, test.labels, masks, regions, limits
    )
