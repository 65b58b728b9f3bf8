"""An example plugin method for ad-orchestrator (see adapters/README.md)."""

from knn_plugin.adapter import KnnPatch

__all__ = ["KnnPatch"]
