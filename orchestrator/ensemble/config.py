"""FeatureEnsemble's default configuration (orchestrator.ensemble.adapter), apart from the
network code so that the registry checks its ``ensemble`` section without importing torch."""

from __future__ import annotations

from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    "members": ["patchcore", "simplenet"],
    "member_overrides": {},  # method name -> overrides of its registry config
    "member_profile": "paper",
    "member_source": "auto",
    "registry": None,  # extra registry file for the members
    "fusion": "ift",  # ift (independent per-member PCA) | global (one PCA)
    "components": None,  # total kept components; None: first member's channel count
    "variance": None,  # per member by explained variance (e.g. 0.95) instead of a split
    "projection": False,  # per-member linear layer: bool or one bool per member
    "hidden": 1024,
    "epochs": 20,
    "lr": 0.0002,
    "proj_lr": 0.0001,
    # Relative to the fused features' mean std (with scale). Chosen on validation data
    # (registry.yaml, ensemble.chosen, says how); replaces 0.3, once chosen on test AUROC.
    "noise_std": 1.0,
    "margin": 0.5,
    "scale": True,  # divide fused features by their mean train std (noise_std is relative)
    "smoothing_sigma": 4.0,
    "batch_size": 1024,  # patches per discriminator step
    "image_size": None,  # None: the members' own input sizes
    "pretrained": None,  # None: the members' own setting; else forwarded to them
    "seed": 0,
}
