"""Vendoring of the pinned upstream repositories (vendor/<method>, git-ignored)."""

from orchestrator.vendor.checkout import (
    VendorState,
    check_url,
    checkout_state,
    checkout_state_at,
    entry_dir,
    inside_vendor,
    mirror_source,
    resolve_source,
    sync,
)

__all__ = [
    "VendorState",
    "check_url",
    "checkout_state",
    "checkout_state_at",
    "entry_dir",
    "inside_vendor",
    "mirror_source",
    "resolve_source",
    "sync",
]
