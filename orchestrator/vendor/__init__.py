"""Vendoring of the pinned upstream repositories (vendor/<method>, git-ignored)."""

from orchestrator.vendor.checkout import (
    VendorState,
    checkout_state,
    checkout_state_at,
    entry_dir,
    mirror_source,
    resolve_source,
    sync,
)

__all__ = [
    "VendorState",
    "checkout_state",
    "checkout_state_at",
    "entry_dir",
    "mirror_source",
    "resolve_source",
    "sync",
]
