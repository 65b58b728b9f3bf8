"""Small JSON memos in the cache folder that spare later processes a slow computation.

A :class:`DiskMemo` is one JSON object in ``orchestrator.paths.cache_dir()``; each key maps to
a result stored with what tells whether it still holds (a file's size and mtime, a library's
version), which the caller checks. The memo is an optimisation only: an unreadable, corrupt or
unwritable file is the same as an empty one, and writers replace the file atomically (when two
write at once, the last one wins).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.paths import cache_dir


class DiskMemo:
    """``key -> JSON value`` kept in ``<cache_dir()>/<name>``, read once per process (per
    cache folder: ``$ORCHESTRATOR_CACHE`` may change)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[str, Any] | None = None
        self._read_from: Path | None = None

    def _path(self) -> Path:
        return cache_dir() / self.name

    def _load(self) -> dict[str, Any]:
        try:
            path = self._path()
        except OSError:  # no cache folder can be made: nothing remembered
            return {}
        if self._data is None or self._read_from != path:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            self._data = data if isinstance(data, dict) else {}
            self._read_from = path
        return self._data

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (None: none)."""
        return self._load().get(key)

    def put(self, key: str, value: Any, keep: Callable[[str, Any], bool] | None = None) -> None:
        """Store ``value`` under ``key``: merged into what the file holds now (less the
        entries ``keep`` rejects), written atomically; a failure to write only costs the next
        process the computation."""
        self._data = None  # another process may have added entries since we read
        data = self._load()
        if keep is not None:
            data = self._data = {k: v for k, v in data.items() if keep(k, v)}
        data[key] = value
        try:
            path = self._path()
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{self.name}.", suffix=".part")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
