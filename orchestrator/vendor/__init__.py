"""Vendoring of the pinned upstream repositories (vendor/<method>, git-ignored)."""

from orchestrator.vendor.checkout import (
    VendorState,
    checkout_state,
    mirror_source,
    resolve_source,
    sync,
)

__all__ = ["VendorState", "checkout_state", "mirror_source", "resolve_source", "sync"]
