"""Start (or join) a Ray cluster for the duration of a command."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.errors import UserError
from orchestrator.netcheck import connect_timeout, probe_tcp, split_host_port

# Tune's default file loggers (CSV, JSON, TensorBoard) write nothing we use.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Ctrl-C reaches the survey as KeyboardInterrupt (parent run KILLED, exit 130, --resume picks
# up) instead of Tune's own handler, which ends the run as if it had finished.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")


_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Make a local Ray use 127.0.0.1 as its node address: its servers (GCS, raylet, workers'
    gRPC, the runtime-env agent) bind to the node address, which otherwise is the machine's
    outward interface (they then listen to the network). Ray reads the same switch it uses on
    single-machine platforms, in this process and in the processes it starts; both are
    restored afterwards (joining a cluster later needs the outward address)."""
    from ray._private import ray_constants

    before_env, before = os.environ.get(_LOOPBACK_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: set it for this process too
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(_LOOPBACK_SWITCH, None)
        else:
            os.environ[_LOOPBACK_SWITCH] = before_env


def _on_loopback(address: str) -> bool:
    """Is ``address`` (``host:port``, ``ray://host:port``) a cluster on this machine's
    loopback (127.0.0.0/8, ::1, localhost)?"""
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_ray_address(address: str | None) -> str | None:
    """``--ray-address``, else ``$RAY_ADDRESS``, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def ray_target(address: str | None, num_cpus: int | None) -> str | None:
    """The cluster to join (:func:`resolve_ray_address`), checked with ``--num-cpus`` and
    probed (:func:`check_ray_address`); None for a local Ray."""
    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
    address = resolve_ray_address(address)
    if address and num_cpus is not None:
        raise UserError(
            f"--num-cpus sizes a local Ray; the cluster at {address} has its own CPUs "
            "(drop --num-cpus, or unset --ray-address / RAY_ADDRESS)"
        )
    if address:
        check_ray_address(address)
    return address


def check_ray_address(address: str, timeout: float | None = None) -> None:
    """One line, within ``timeout`` seconds, when nothing listens at a cluster's address
    (``host:port`` or ``ray://host:port``; ``auto`` is left to Ray)."""
    if address in ("auto", "local"):
        return
    host, port = split_host_port(address.removeprefix("ray://"), what="--ray-address")
    timeout = connect_timeout() if timeout is None else timeout
    problem = probe_tcp(host, port, timeout)
    if problem:
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({problem}); check --ray-address / "
            "RAY_ADDRESS, or leave both unset for a local Ray"
        )


def _init(**kwargs) -> None:
    """``ray.init`` keeping this process' SIGTERM handler (Ray installs one that exits at once,
    which would leave the runs RUNNING; the CLI's handler ends them KILLED)."""
    import ray

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**kwargs)
    finally:
        if main and before is not None:
            signal.signal(signal.SIGTERM, before)


@contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None, timeout: float | None = None
) -> Iterator[dict]:
    """Ray for a block: joins ``address`` (or ``$RAY_ADDRESS``) or an already initialised Ray,
    else starts a local one bound to 127.0.0.1 (no dashboard) and stops it at the end.
    Yields ``ray.cluster_resources()``. A cluster that does not answer within ``timeout``
    seconds (default ``$ORCHESTRATOR_CONNECT_TIMEOUT`` or 10) is one UserError."""
    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
    address = resolve_ray_address(address)
    if address and num_cpus is not None:
        raise UserError(f"--num-cpus sizes a local Ray, not the cluster at {address}")
    import ray

    if ray.is_initialized():
        yield dict(ray.cluster_resources())
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if address:
        check_ray_address(address, timeout)
        # a cluster on loopback (nodes started with --node-ip-address 127.0.0.1): keep the
        # address as given, Ray would turn 127.0.0.1 into this machine's outward address
        join = _loopback_only() if _on_loopback(address) else contextlib.nullcontext()
        try:
            with join:
                _init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        try:
            yield dict(ray.cluster_resources())
        finally:
            ray.shutdown()
        return
    with _loopback_only():
        os.environ.pop("RAY_ADDRESS", None)  # an empty one would still be read by ray.init
        # "local": a new Ray of its own, even where a cluster of this machine (a `ray start`)
        # would otherwise be joined (and refuse num_cpus)
        _init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
        try:
            yield dict(ray.cluster_resources())
        finally:
            ray.shutdown()


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster has (0 when none, never a guess)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0)) if ray.is_initialized() else 0.0
