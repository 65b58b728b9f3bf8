"""What every check of ``orchestrate doctor`` shares: its result, the options, the
context one check leaves for a later one, the thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

OK, WARN, FAIL = "ok", "warn", "FAIL"

#: A dataset with at most this many files (images and masks) gets the full validator of
#: ``orchestrate datasets check``; a larger one a quick check (layout, masks present, one
#: image per folder opened), unless ``--full-dataset-check``.
FULL_CHECK_MAX_FILES = 800
#: Seconds, on top of ``$ORCHESTRATOR_CONNECT_TIMEOUT``, that joining a Ray cluster may take
#: (starting Python and importing Ray in the probe process).
RAY_JOIN_EXTRA_S = 15.0
#: The throwaway experiment the tracking check creates and deletes on a server.
PROBE_EXPERIMENT_PREFIX = "orchestrate-doctor-"


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str

    def line(self) -> str:
        return f"{self.name:<9} {self.status:<4}  {self.detail}"


@dataclass
class DoctorOptions:
    ray_address: str | None = None
    tracking_uri: str | None = None
    dataset: str = "synthetic"
    dataset_root: Path | None = None
    categories: list[str] | None = None
    registry: Path | None = None
    full_dataset_check: bool = False


@dataclass
class _Context:
    """What one check finds and a later one uses (torch's GPU count, the registry)."""

    opts: DoctorOptions
    gpus: int | None = None  # CUDA devices torch sees (None: unknown)
    _registry: Any = None
    _registry_error: BaseException | None = None

    def registry(self):
        """The registry (built-in plus ``--registry``), loaded once; its error every time."""
        if self._registry is None and self._registry_error is None:
            from orchestrator.registry import load_registry

            try:
                self._registry = load_registry(self.opts.registry)
            except Exception as exc:  # noqa: BLE001 - reported by each check that needs it
                self._registry_error = exc
        if self._registry_error is not None:
            raise UserError(f"registry: {_reason(self._registry_error)}")
        return self._registry


def _reason(exc: BaseException) -> str:
    """One line out of an exception: a UserError's message as is, else its type and text."""
    text = str(exc).strip()
    if not isinstance(exc, UserError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."
