"""Method adapters: one module or package per method, all behind adapters.base.Adapter."""

from adapters.base import (
    ALL_CAPABILITIES,
    ANOMALY_MAP,
    FEATURES,
    IMAGE_SCORE,
    Adapter,
    FeatureMaps,
    Predictions,
    Resources,
)

__all__ = [
    "ALL_CAPABILITIES",
    "ANOMALY_MAP",
    "FEATURES",
    "IMAGE_SCORE",
    "Adapter",
    "FeatureMaps",
    "Predictions",
    "Resources",
]
