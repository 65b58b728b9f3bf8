"""``evaluate``: every metric of a method's predictions on a test set, in one call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orchestrator.data.types import Region, SampleSet
from orchestrator.metrics.curves import (
    FPR_LIMITS,
    PRO_LIMIT,
    RegionScores,
    SortedPool,
    au_pro,
    au_spro,
    connected_components,
    pixel_auroc,
)
from orchestrator.metrics.image import f1_max, image_auroc_by_type

#: The anomaly types MVTec LOCO reports separately.
LOCO_TYPES = ("logical", "structural")


def limit_key(limit: float) -> str:
    """How a limit appears in metric names and metrics.json: 0.05 -> "0.05", 1 -> "1.0"."""
    return str(float(limit))


def _normal_pixels(maps: np.ndarray, masks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Scores of the pixels outside the ground truth of images ``idx``, as one float32 array
    (filled image by image: no full-size temporaries)."""
    counts = [int(masks[i].size - np.count_nonzero(masks[i])) for i in idx]
    out = np.empty(sum(counts), dtype=np.float32)
    offset = 0
    for i, c in zip(idx, counts):
        out[offset : offset + c] = maps[i][~masks[i]]
        offset += c
    return out


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
    regions: per image its LOCO defect regions with resolved saturation thresholds (for
    AU-sPRO; ``None`` skips sPRO, as for MVTec AD).

    Keys:

    - ``image_auroc`` (all anomalous images pooled vs good), ``image_auroc_logical`` /
      ``_structural`` (each vs all good images) and ``image_auroc_mean`` (their average;
      the MVTec LOCO headline), see :func:`image_auroc_by_type`;
    - ``f1_max`` and ``f1_threshold`` (image level, all anomalies vs good);
    - ``pixel_auroc`` (exact, every test pixel, merged masks);
    - ``au_pro`` (MVTec AD: connected components of the merged masks, FPR <= 0.3);
    - ``au_spro_<type>_<limit>`` for type logical / structural (that type's images plus all
      good images) and ``au_spro_<limit>``, the average of the two types (MVTec LOCO's
      "mean").

    A type absent from the test set leaves its keys out; when only one type is present,
    the "mean" keys equal that type's figure (the mean over the types there are).
    """
    labels = np.asarray(labels)
    scores = np.asarray(image_scores, dtype=np.float64)
    maps = np.asarray(anomaly_maps, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ")
    if not (len(scores) == len(labels) == len(maps)):
        raise ValueError(f"{len(scores)} scores, {len(labels)} labels, {len(maps)} maps")
    if not np.isfinite(scores).all() or not all(np.isfinite(m).all() for m in maps):
        raise ValueError("image scores and anomaly maps must be finite (no NaN or inf)")
    out = image_auroc_by_type(scores, labels)
    good = labels == "good"
    if good.any() and (~good).any():
        out["f1_max"], out["f1_threshold"] = f1_max(scores, ~good)

    # normal pixels, one sorted array per label (shared by all pixel metrics)
    names = [str(lab) for lab in np.unique(labels)]
    groups = [_normal_pixels(maps, masks, np.flatnonzero(labels == lab)) for lab in names]
    pools = {lab: SortedPool([g], in_place=True) for lab, g in zip(names, groups)}
    del groups
    all_neg = SortedPool()
    for pool in pools.values():
        all_neg = all_neg + pool
    if masks.any() and len(all_neg):
        out["pixel_auroc"] = pixel_auroc(all_neg, maps[masks])
        components = [
            maps[i][comp]
            for i in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
            for comp in connected_components(masks[i])
        ]
        out["au_pro"] = au_pro(all_neg, components, PRO_LIMIT)

    if regions is not None:
        per_type: dict[str, dict[float, float]] = {}
        for kind in LOCO_TYPES:
            idx = np.flatnonzero(labels == kind)
            if idx.size == 0 or "good" not in pools:
                continue
            region_scores = [
                RegionScores(maps[i][r.mask], r.saturation) for i in idx for r in regions[i]
            ]
            if not region_scores:
                continue
            per_type[kind] = au_spro(pools["good"] + pools[kind], region_scores, limits)
            for lim, v in per_type[kind].items():
                out[f"au_spro_{kind}_{limit_key(lim)}"] = v
        if per_type:
            for lim in limits:
                out[f"au_spro_{limit_key(lim)}"] = float(
                    np.mean([v[lim] for v in per_type.values()])
                )
    return out


def evaluate(test: SampleSet, preds, limits: Sequence[float] = FPR_LIMITS) -> dict[str, float]:
    """Every metric of ``preds`` (an :class:`adapters.base.Predictions`) on ``test``.

    Image scores are the method's own (``preds.image_scores``). Masks and LOCO regions are
    loaded at ``test.eval_size`` (the maps' resolution); AU-sPRO is computed where the test
    set has LOCO defect regions (a defects config); MVTec AD sets get image / pixel AUROC and
    AU-PRO. See :func:`evaluate_arrays` for the keys.
    """
    if len(preds.image_scores) != len(test):
        raise ValueError(f"{len(preds.image_scores)} predictions for {len(test)} test images")
    if preds.anomaly_maps.shape[1:] != tuple(test.eval_size):
        raise ValueError(
            f"anomaly maps are {preds.anomaly_maps.shape[1:]}, evaluation size is "
            f"{tuple(test.eval_size)}"
        )
    keys = list(getattr(preds, "keys", []) or [])
    if keys and keys != [s.key for s in test]:
        raise ValueError("predictions are not in the test set's order (keys differ)")
    masks = test.load_masks()
    regions = test.load_regions() if test.defects else None
    return evaluate_arrays(
        preds.image_scores, preds.anomaly_maps, test.labels, masks, regions, limits
    )
