"""SimpleNet (Liu et al., CVPR 2023) behind the adapter contract: native and upstream sources."""

from adapters.simplenet.adapter import SimpleNet

__all__ = ["SimpleNet"]
