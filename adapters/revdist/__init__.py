"""Revisiting Reverse Distillation (RD++, CVPR 2023) behind the adapter contract."""

from adapters.revdist.adapter import RevDist

__all__ = ["RevDist"]
