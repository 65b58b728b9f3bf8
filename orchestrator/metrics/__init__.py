"""Metrics: image AUROC (pooled / logical / structural), F1-max, exact pixel AUROC, AU-PRO and
AU-sPRO with the official MVTec AD / MVTec LOCO definitions. Plain functions over arrays;
:func:`evaluate` is the entry point for a :class:`~orchestrator.data.types.SampleSet` and a
method's predictions."""

from orchestrator.metrics.curves import (
    FPR_LIMITS,
    PRO_LIMIT,
    RegionScores,
    SortedPool,
    area_under_curve,
    au_pro,
    au_spro,
    connected_components,
    pixel_auroc,
    spro_curve,
)
from orchestrator.metrics.evaluate import evaluate, evaluate_arrays, limit_key
from orchestrator.metrics.image import f1_max, image_auroc, image_auroc_by_type

__all__ = [
    "FPR_LIMITS",
    "PRO_LIMIT",
    "RegionScores",
    "SortedPool",
    "area_under_curve",
    "au_pro",
    "au_spro",
    "connected_components",
    "evaluate",
    "evaluate_arrays",
    "f1_max",
    "image_auroc",
    "image_auroc_by_type",
    "limit_key",
    "pixel_auroc",
    "spro_curve",
]
