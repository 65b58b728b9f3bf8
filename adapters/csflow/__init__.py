"""CS-Flow (Rudolph et al., WACV 2022) behind the adapter contract: native and upstream sources."""

from adapters.csflow.adapter import CSFlow

__all__ = ["CSFlow"]
