"""DRAEM (Zavrtanik et al., ICCV 2021) behind the adapter contract: native and upstream sources."""

from adapters.draem.adapter import DRAEM

__all__ = ["DRAEM"]
