"""Checks of what a survey talks to: the Ray cluster and the MLflow tracking store."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator.doctor.base import (
    FAIL,
    OK,
    PROBE_EXPERIMENT_PREFIX,
    RAY_JOIN_EXTRA_S,
    WARN,
    Result,
    _Context,
    _reason,
)
from orchestrator.errors import UserError

# --- Ray -----------------------------------------------------------------------------------

#: Joins the cluster (orchestrator.scheduling.ray_session, as a survey does) in a child
#: process, so that a join that hangs is ended by a timeout and Ray's handlers and logs stay
#: out of this one; prints ``RESULT {json}`` or ``ERROR message``.
_RAY_PROBE = r"""
import json, sys
from orchestrator.errors import UserError
from orchestrator.scheduling.ray_session import ray_session
try:
    with ray_session(sys.argv[1], timeout=float(sys.argv[2])) as resources:
        import ray
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        print("RESULT " + json.dumps(
            {"resources": resources, "nodes": nodes, "version": ray.__version__}))
except Exception as exc:
    why = (str(exc).splitlines() or [""])[0]
    if not isinstance(exc, UserError):
        why = f"cannot join the Ray cluster at {sys.argv[1]}: {type(exc).__name__}: {why}"
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if root is not exc:  # what Ray's "Failed to connect" hides (a token, a version mismatch)
        cause = (str(root).splitlines() or [""])[0]
        why += f" ({type(root).__name__}: {cause[:200]})"
    print("ERROR " + why)
    sys.exit(3)
"""


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def check_ray(ctx: _Context) -> Result:
    from orchestrator.netcheck import connect_timeout
    from orchestrator.scheduling.ray_session import check_ray_address, resolve_ray_address

    if importlib.util.find_spec("ray") is None:
        return Result("ray", FAIL, "ray is not installed (pip install 'ray[tune]')")
    address = resolve_ray_address(ctx.opts.ray_address)
    if not address:
        gpus = "?" if ctx.gpus is None else str(ctx.gpus)
        return Result(
            "ray",
            OK,
            f"local Ray {_package_version('ray')}: {os.cpu_count() or 1} CPUs, {gpus} GPUs "
            "would be used (started by the survey, bound to 127.0.0.1; none started now)",
        )
    timeout = connect_timeout()
    check_ray_address(address, timeout)  # nothing listening: one line, within the timeout
    limit = timeout + RAY_JOIN_EXTRA_S
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *_pythonpath()])}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RAY_PROBE, address, str(timeout)],
            capture_output=True,
            text=True,
            timeout=limit,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Result(
            "ray",
            FAIL,
            f"{address} accepts connections, but joining it did not finish within {limit:g} s "
            "(a driver talks to a Ray node on its own machine: `ray start --address "
            f"{address}` here first, as the compose job does)",
        )
    lines = proc.stdout.splitlines()
    found = [ln[len("RESULT ") :] for ln in lines if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not found:
        errors = [ln[len("ERROR ") :] for ln in lines if ln.startswith("ERROR ")]
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        if errors:
            return Result("ray", FAIL, errors[-1])
        why = (tail[-1:] or [f"exit code {proc.returncode}"])[0]
        return Result("ray", FAIL, f"cannot join the Ray cluster at {address}: {why}")
    info = json.loads(found[-1])
    res = info["resources"]
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    memory = float(res.get("memory", 0)) / 2**30
    detail = (
        f"{address}: Ray {info['version']}, {info['nodes']} node(s), {cpus:g} CPUs, "
        f"{gpus:g} GPUs, {memory:.0f} GiB memory"
    )
    if cpus < 1:
        return Result("ray", FAIL, f"{detail}: no CPUs to run trials on")
    return Result("ray", OK, detail)


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


# --- MLflow --------------------------------------------------------------------------------


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Environment variables set for a block, restored afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_tracking(ctx: _Context) -> Result:
    given = ctx.opts.tracking_uri
    origin = (
        "--tracking-uri"
        if given
        else "$MLFLOW_TRACKING_URI"
        if os.environ.get("MLFLOW_TRACKING_URI")
        else "default"
    )
    try:
        return _check_tracking(given, origin)
    except UserError as exc:
        return Result("mlflow", FAIL, f"{_reason(exc)} (from {origin})")


def _check_tracking(given: str | None, origin: str) -> Result:
    from orchestrator.tracking.store import check_tracking_server, resolve_tracking_uri

    uri = resolve_tracking_uri(given)  # a missing folder, a retired file store: UserError
    if uri.startswith("sqlite:///"):
        return _check_sqlite(uri, origin)
    check_tracking_server(uri)  # a server that does not answer: UserError within the timeout
    from orchestrator.netcheck import connect_timeout, probe_tcp

    timeout = connect_timeout()
    db_host, db_port = _database_address(uri)
    if db_host:  # a database MLflow would connect to itself (and retry for long)
        problem = probe_tcp(db_host, db_port, timeout)
        if problem:
            return Result(
                "mlflow",
                FAIL,
                f"{_shown(uri)} ({origin}): cannot reach {db_host}:{db_port} ({problem})",
            )
    name = PROBE_EXPERIMENT_PREFIX + os.urandom(6).hex()
    # MLflow's client retries for minutes by default: one try, within the timeout
    with _env(
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT=str(max(1, round(timeout))),
    ):
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        try:
            exp_id = client.create_experiment(name)
        except Exception as exc:  # noqa: BLE001 - refused, read-only, bad credentials
            return Result(
                "mlflow",
                FAIL,
                f"{_shown(uri)} ({origin}): reachable, not writable: " + _reason(exc),
            )
        try:
            client.delete_experiment(exp_id)
        except Exception as exc:  # noqa: BLE001
            return Result(
                "mlflow",
                WARN,
                f"{_shown(uri)} ({origin}): writable, but the test experiment {name} could not be "
                f"deleted ({_reason(exc)})",
            )
    return Result(
        "mlflow",
        OK,
        f"{_shown(uri)} ({origin}): reachable, writable (created and deleted a test experiment)",
    )


#: default ports of the database back ends MLflow takes as tracking URIs
_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _database_address(uri: str) -> tuple[str | None, int]:
    """``(host, port)`` of a database tracking URI (``postgresql+psycopg2://u:p@h:5432/db``);
    ``(None, 0)`` for anything else or a socket connection without a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in _DB_PORTS or not parts.hostname:
        return None, 0
    return parts.hostname, parts.port or _DB_PORTS[scheme]


def _shown(uri: str) -> str:
    """``uri`` without a password (``postgresql://user:***@host/db``)."""
    import re

    return re.sub(r"(://[^/:@\s]*):[^/@\s]*@", r"\1:***@", uri)


def _check_sqlite(uri: str, origin: str) -> Result:
    import sqlite3

    db = Path(uri[len("sqlite:///") :])
    folder = db.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".orchestrate-doctor-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Result(
            "mlflow",
            FAIL,
            f"{uri} ({origin}): folder {folder} is not writable ({exc.strerror or exc})",
        )
    artifacts = folder / "mlartifacts"
    if artifacts.exists() and not (artifacts.is_dir() and os.access(artifacts, os.W_OK)):
        return Result("mlflow", FAIL, f"{uri} ({origin}): {artifacts} is not a writable folder")
    if not db.exists():
        return Result(
            "mlflow", OK, f"{uri} ({origin}): new store (the first run creates it), folder writable"
        )
    if not os.access(db, os.W_OK):
        return Result("mlflow", FAIL, f"{uri} ({origin}): {db} is read-only")
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            experiments = (
                con.execute("SELECT count(*) FROM experiments").fetchone()[0]
                if "experiments" in tables
                else None
            )
        finally:
            con.close()
    except sqlite3.Error as exc:
        return Result("mlflow", FAIL, f"{uri} ({origin}): {db} is not a usable database ({exc})")
    if tables and experiments is None:
        return Result("mlflow", FAIL, f"{uri} ({origin}): {db} is a database, not an MLflow store")
    return Result(
        "mlflow", OK, f"{uri} ({origin}): MLflow store, {experiments or 0} experiment(s), writable"
    )
