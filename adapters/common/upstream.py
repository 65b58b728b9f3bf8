"""Importing vendored upstream code from outside, without editing it.

Upstream repositories often ship loose top-level modules with generic names (``common``,
``utils``, ``metrics``) that would clash between checkouts. ``upstream_modules`` puts the
checkout first on ``sys.path``, hides same-named modules already imported, imports the
requested modules (writing no ``__pycache__`` into the checkout, which must stay clean),
then restores ``sys.path`` and ``sys.modules``: the returned module objects keep their own
references to the checkout's modules.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from orchestrator.errors import UserError


def upstream_modules(path: Path, names: list[str], package: bool = False) -> dict[str, ModuleType]:
    """Import ``names`` from the checkout folder ``path``; ``{name: module}``.

    ``package=True`` keeps the imported modules registered (for proper packages such as
    ``patchcore`` whose modules import each other by package name).
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"upstream checkout not found at {path} (run: orchestrate vendor sync)")
    tops = {n.split(".")[0] for n in names}
    saved = {
        k: v
        for k, v in sys.modules.items()
        if k.split(".")[0] in tops or (not package and _is_loose(k, path))
    }
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(path))
    before = set(sys.modules)
    no_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep checkout clean
    try:
        mods = {n: importlib.import_module(n) for n in names}
    finally:
        sys.dont_write_bytecode = no_bytecode
        sys.path.remove(str(path))
        if not package:
            for k in set(sys.modules) - before:
                mod = sys.modules.get(k)
                if _from_checkout(mod, path):
                    del sys.modules[k]
            sys.modules.update(saved)
    return mods


def _is_loose(name: str, path: Path) -> bool:
    """A top-level module name that also exists as a file in the checkout."""
    return "." not in name and (path / f"{name}.py").exists()


def _from_checkout(mod: ModuleType | None, path: Path) -> bool:
    """A module (or a namespace package: no ``__file__``, only ``__path__``) of the checkout."""
    places = [getattr(mod, "__file__", None) or ""] + list(getattr(mod, "__path__", None) or [])
    root = path.resolve()
    for place in filter(None, places):
        try:
            if Path(place).resolve().is_relative_to(root):
                return True
        except (OSError, ValueError, TypeError):
            continue
    return False
