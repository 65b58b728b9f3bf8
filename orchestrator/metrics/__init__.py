"""Metrics: image AUROC (pooled / logical / structural), F1-max, exact pixel AUROC, AU-PRO and
AU-sPRO with the official MVTec LOCO definitions. Plain functions over arrays."""

from orchestrator.metrics.curves import (
    FPR_LIMITS,
    RegionScores,
    SortedPool,
    area_under_curve,
    au_spro,
    pixel_auroc,
    spro_curve,
)
from orchestrator.metrics.evaluate import evaluate, evaluate_arrays
from orchestrator.metrics.image import f1_max, image_auroc, image_auroc_by_type

__all__ = [
    "FPR_LIMITS",
    "RegionScores",
    "SortedPool",
    "area_under_curve",
    "au_spro",
    "evaluate",
    "evaluate_arrays",
    "f1_max",
    "image_auroc",
    "image_auroc_by_type",
    "pixel_auroc",
    "spro_curve",
]
