"""The checks of ``orchestrate doctor``: is this machine ready to run a survey?

Each check returns one :class:`Result` (ok / warn / FAIL and a short reason) and catches its
own errors: a broken environment is a FAIL line naming what went wrong, never a traceback.
Only the standard library (and orchestrator.errors) is imported here; torch, faiss, mlflow
and the registry (which imports the adapters) are imported by the checks that need them, Ray
and MLflow's client only for a cluster address or a tracking server. Ray is joined in a child
process (a join that hangs is ended by a timeout); no local Ray is started.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

from orchestrator.doctor.base import (
    FAIL,
    FULL_CHECK_MAX_FILES,
    OK,
    PROBE_EXPERIMENT_PREFIX,
    RAY_JOIN_EXTRA_S,
    WARN,
    DoctorOptions,
    Result,
    _Context,
    _reason,
)
from orchestrator.doctor.data import check_dataset, check_upstream, check_weights
from orchestrator.doctor.services import check_ray, check_tracking
from orchestrator.doctor.system import check_cuda, check_faiss, check_python, check_torch

__all__ = [
    "FAIL",
    "FULL_CHECK_MAX_FILES",
    "OK",
    "PROBE_EXPERIMENT_PREFIX",
    "RAY_JOIN_EXTRA_S",
    "WARN",
    "CHECKS",
    "DoctorOptions",
    "Result",
    "check_cuda",
    "check_dataset",
    "check_faiss",
    "check_python",
    "check_ray",
    "check_torch",
    "check_tracking",
    "check_upstream",
    "check_weights",
    "run_checks",
]


# --- all of them -----------------------------------------------------------------------------

#: (name, check), in the order they run and print
CHECKS: tuple[tuple[str, Callable[[_Context], Result]], ...] = (
    ("python", check_python),
    ("torch", check_torch),
    ("cuda", check_cuda),
    ("faiss", check_faiss),
    ("ray", check_ray),
    ("mlflow", check_tracking),
    ("upstream", check_upstream),
    ("weights", check_weights),
    ("dataset", check_dataset),
)


def run_checks(opts: DoctorOptions, only: Collection[str] | None = None) -> Iterator[Result]:
    """Every check's result (or those named in ``only``), as each finishes; a check that
    raises is a FAIL with the reason (Ctrl-C still stops the whole)."""
    ctx = _Context(opts)
    for name, check in CHECKS:
        if only is not None and name not in only:
            continue
        try:
            yield check(ctx)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a library included
            yield Result(name, FAIL, _reason(exc))
