"""Where the orchestrator keeps its caches and the repository-level files."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (holds registry.yaml and vendor/) for a source/editable install.
REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Cache folder: ``$ORCHESTRATOR_CACHE`` or ``~/.cache/ad-orchestrator``."""
    env = os.environ.get("ORCHESTRATOR_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "ad-orchestrator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def vendor_dir() -> Path:
    """Folder of the pinned upstream checkouts: ``$ORCHESTRATOR_VENDOR`` or ``<repo>/vendor``."""
    env = os.environ.get("ORCHESTRATOR_VENDOR")
    return Path(env) if env else REPO_ROOT / "vendor"
