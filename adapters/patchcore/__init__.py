"""PatchCore (Roth et al., CVPR 2022) behind the adapter contract: native and upstream sources."""

from adapters.patchcore.adapter import PatchCore

__all__ = ["PatchCore"]
