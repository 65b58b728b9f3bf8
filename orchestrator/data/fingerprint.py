"""A stable fingerprint of a category folder, recorded with every run."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.data.types import Category


def fingerprint_dir(folder: Path) -> str:
    """sha256 (16 hex) of the sorted relative file list with each file's size.

    Stable across machines and copies (no timestamps, no absolute paths); changes when a
    file is added, removed, renamed or changes size.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(f"{rel}\t{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def fingerprint(category: Category) -> str:
    """Fingerprint of a loaded category's folder."""
    return fingerprint_dir(category.root)
