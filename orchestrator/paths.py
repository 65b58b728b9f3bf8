"""Where the orchestrator keeps its caches and finds the repository-level files.

The package runs either from a *source checkout* (a clone, plain or ``pip install -e``) or as an
*installed copy* (a wheel, ``pip install .``, ``pip install --target``). A source checkout is
recognised by the project's own files beside the package: the folder above ``orchestrator/``
holds ``registry.yaml``, ``adapters/`` and a ``pyproject.toml`` whose project is
``ad-orchestrator`` (a site-packages folder or a ``--target`` folder has none of them).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

#: The installed (or checked-out) ``orchestrator`` package folder.
PACKAGE_DIR = Path(__file__).resolve().parent
#: The folder above the package: the repository root in a source checkout (see
#: :func:`source_checkout`), site-packages or the like for an installed copy.
REPO_ROOT = PACKAGE_DIR.parent
#: The project name a checkout's pyproject.toml must carry.
PROJECT_NAME = "ad-orchestrator"
REGISTRY_NAME = "registry.yaml"


def source_checkout(root: Path | None = None) -> Path | None:
    """``root`` (default :data:`REPO_ROOT`) when it is this project's source checkout, else None
    (an installed copy)."""
    root = REPO_ROOT if root is None else root
    if not ((root / REGISTRY_NAME).is_file() and (root / "adapters").is_dir()):
        return None
    try:
        meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = meta.get("project")
    return root if isinstance(project, dict) and project.get("name") == PROJECT_NAME else None


def builtin_registry() -> Path:
    """The built-in registry file: the repository's ``registry.yaml`` in a source checkout
    (its one source), else the copy the build put into the package
    (``orchestrator/registry.yaml``, see setup.py)."""
    checkout = source_checkout()
    return checkout / REGISTRY_NAME if checkout else PACKAGE_DIR / REGISTRY_NAME


def cache_dir() -> Path:
    """Cache folder: ``$ORCHESTRATOR_CACHE`` or ``~/.cache/ad-orchestrator``."""
    env = os.environ.get("ORCHESTRATOR_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "ad-orchestrator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def vendor_dir() -> Path:
    """Folder of the pinned upstream checkouts: ``$ORCHESTRATOR_VENDOR``, else ``<repo>/vendor``
    in a source checkout, else ``<cache_dir()>/vendor`` for an installed copy."""
    env = os.environ.get("ORCHESTRATOR_VENDOR")
    if env:
        return Path(env)
    checkout = source_checkout()
    return checkout / "vendor" if checkout else cache_dir() / "vendor"
