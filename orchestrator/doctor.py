"""The checks of ``orchestrate doctor``: is this machine ready to run a survey?

Each check returns one :class:`Result` (ok / warn / FAIL and a short reason) and catches its
own errors: a broken environment is a FAIL line naming what went wrong, never a traceback.
Only the standard library (and orchestrator.errors) is imported here; torch, faiss, mlflow
and the registry (which imports the adapters) are imported by the checks that need them, Ray
and MLflow's client only for a cluster address or a tracking server. Ray is joined in a child
process (a join that hangs is ended by a timeout); no local Ray is started.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
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


# --- Python, torch, CUDA, faiss ------------------------------------------------------------


def _requires_python() -> str | None:
    """The project's ``requires-python``: the installed metadata's, else the checkout's."""
    from orchestrator.paths import PROJECT_NAME, source_checkout

    try:
        return importlib.metadata.metadata(PROJECT_NAME).get("Requires-Python")
    except importlib.metadata.PackageNotFoundError:
        pass
    root = source_checkout()
    if root is None:
        return None
    import tomllib

    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return (meta.get("project") or {}).get("requires-python")


def check_python(ctx: _Context) -> Result:
    version = platform.python_version()
    where = f"{version} ({sys.executable})"
    required = _requires_python()
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # not a dependency of the project: compare nothing then
        return Result("python", OK, where)
    if required and version not in SpecifierSet(required):
        return Result("python", FAIL, f"{where}; the project needs Python {required}")
    return Result("python", OK, where)


def check_torch(ctx: _Context) -> Result:
    import torch
    import torchvision

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return Result(
        "torch", OK, f"torch {torch.__version__}, torchvision {torchvision.__version__} ({build})"
    )


def check_cuda(ctx: _Context) -> Result:
    import torch

    if not torch.version.cuda:
        ctx.gpus = 0
        return Result("cuda", WARN, "torch is a CPU-only build: no GPU is used")
    if not torch.cuda.is_available():
        ctx.gpus = 0
        return Result(
            "cuda",
            WARN,
            f"no CUDA device (torch built for CUDA {torch.version.cuda}): trials run on the "
            "CPU, quick profile by default",
        )
    n = torch.cuda.device_count()
    ctx.gpus = n
    names = []
    for i in range(n):
        props = torch.cuda.get_device_properties(i)
        names.append(f"{i}: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    return Result("cuda", OK, f"CUDA {torch.version.cuda}, {n} GPU(s): " + ", ".join(names))


def check_faiss(ctx: _Context) -> Result:
    import faiss

    version = getattr(faiss, "__version__", "?")
    gpu_build = hasattr(faiss, "StandardGpuResources")
    if gpu_build:
        n = faiss.get_num_gpus()
        if n > 0:
            return Result("faiss", OK, f"{version}, GPU build, {n} GPU(s)")
        if ctx.gpus:
            return Result(
                "faiss",
                WARN,
                f"{version}, GPU build, but it sees no GPU (torch sees {ctx.gpus}): its CUDA "
                "does not match the driver? PatchCore's search runs on the CPU",
            )
        return Result("faiss", OK, f"{version}, GPU build (no GPU here: searches on the CPU)")
    if ctx.gpus:
        return Result(
            "faiss",
            WARN,
            f"{version}, CPU build on a GPU host: PatchCore's nearest-neighbour search runs on "
            "the CPU (README, GPU hosts: faiss-gpu)",
        )
    return Result("faiss", OK, f"{version}, CPU build (no GPU here)")


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


# --- upstream checkouts, weights -------------------------------------------------------------


def check_upstream(ctx: _Context) -> Result:
    from orchestrator.paths import vendor_dir
    from orchestrator.vendor import checkout_state_at

    reg = ctx.registry()
    entries = [e for e in reg.methods.values() if e.repo]
    if not entries:
        return Result("upstream", OK, "no method has an upstream repository")
    good, absent, bad = [], [], []
    for e in entries:
        st = checkout_state_at(e.checkout_dir, e.commit)  # as `orchestrate vendor status`
        if st.usable:
            good.append(e.name)
        elif not st.present and (not e.available or "native" in e.adapter_class().sources):
            absent.append(e.name)  # --source auto runs the native code
        elif not st.present:
            bad.append(f"{e.name}: no checkout, and no native source")
        else:
            bad.append(f"{e.name}: {st.problem}")
    where = f"in {vendor_dir()}"
    if bad:
        rest = f"; {len(good)} usable" + (f", {len(absent)} absent" if absent else "")
        return Result(
            "upstream", FAIL, "; ".join(bad) + rest + f" ({where}; `orchestrate vendor sync`)"
        )
    if absent:
        usable = f"{', '.join(good)} at pin, clean; " if good else ""
        return Result(
            "upstream",
            WARN,
            f"{usable}not checked out {where}: {', '.join(absent)} (the native sources are "
            "used; `orchestrate vendor sync` for the upstream code)",
        )
    return Result("upstream", OK, f"{len(good)}/{len(entries)} at their pins, clean ({where})")


def check_weights(ctx: _Context) -> Result:
    from types import SimpleNamespace

    from adapters.common.weights import checkpoints_dir, find_weights, weights_spec
    from orchestrator.cli.weights import backbone_uses

    reg = ctx.registry()
    defaults = {n: reg.methods[n] for n in reg.available()}  # what a plain survey runs
    uses = backbone_uses(SimpleNamespace(methods=defaults))
    if not uses:
        return Result("weights", OK, "the default methods use no pretrained backbone")

    def profiles(backbone: str) -> str:
        """``paper`` or ``paper/quick``, ``, upstream source`` when only that one uses it."""
        labels = uses[backbone]  # "method/profile", "method/profile (native)"
        names = "/".join(sorted({u.split("/", 1)[1].split(" ", 1)[0] for u in labels}))
        if all(u.endswith("(upstream)") for u in labels):
            names += ", upstream source"
        return names

    found, missing, unknown, corrupt = [], [], [], []
    for backbone in sorted(uses):
        try:
            weights_spec(backbone)
        except UserError as exc:  # e.g. a layout package of the upstream code not installed
            unknown.append(f"{backbone} ({profiles(backbone)}: {_reason(exc).split(' (')[0]})")
            continue
        try:
            where = find_weights(backbone)
        except UserError as exc:  # a file with the wrong hash
            corrupt.append(_reason(exc))
            continue
        (found if where else missing).append(f"{backbone} ({profiles(backbone)})")
    parts = []
    if found:
        parts.append("found " + ", ".join(found))
    if missing:
        parts.append("not found " + ", ".join(missing))
    if unknown:
        parts.append("unresolved " + ", ".join(unknown))
    if corrupt:
        return Result("weights", FAIL, "; ".join([*corrupt, *parts]))
    if missing or unknown:
        return Result(
            "weights",
            WARN,
            "; ".join(parts) + f" (hub cache {checkpoints_dir()}: torchvision downloads missing "
            "ones on first use where a model hub is reachable; offline, `orchestrate weights "
            "import`)",
        )
    return Result("weights", OK, "; ".join(parts))


# --- dataset -------------------------------------------------------------------------------


def check_dataset(ctx: _Context) -> Result:
    from orchestrator import preflight
    from orchestrator.data import load_dataset

    o = ctx.opts
    cats = load_dataset(o.dataset, o.dataset_root, o.categories)
    preflight.has_images(cats)
    roots = {c.root.parent for c in cats}
    root = next(iter(roots)) if len(roots) == 1 else cats[0].root.parent
    files = sum(
        len(c.train) + len(c.validation) + sum(1 + len(s.mask_paths) for s in c.test) for c in cats
    )
    names = ", ".join(c.name for c in cats)
    what = f"{root}: {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} ({names})"
    if o.full_dataset_check or files <= FULL_CHECK_MAX_FILES:
        from orchestrator.data.validate import validate

        problems = [p for c in cats for p in validate(c.root)]
        if problems:
            return Result(
                "dataset",
                FAIL,
                f"{what}: {len(problems)} problem(s), first: {problems[0]} (`orchestrate "
                "datasets check`)",
            )
        return Result("dataset", OK, f"{what}, {files} files, full check passed")
    opened, problems = _quick_check(cats)
    if problems:
        return Result(
            "dataset",
            FAIL,
            f"{what}: quick check found {len(problems)} problem(s), first: {problems[0]}",
        )
    return Result(
        "dataset",
        OK,
        f"{what}, {files} files: quick check passed (layout, every mask present, {opened} "
        "files opened); full check: `orchestrate datasets check` or --full-dataset-check",
    )


def _quick_check(cats) -> tuple[int, list[str]]:
    """Every anomalous test image's masks exist; one image per (split, folder) and its masks
    open. Returns (files opened, problems)."""
    from PIL import Image

    problems: list[str] = []
    opened = 0
    for cat in cats:
        seen: set[tuple[str, str]] = set()
        for s in [*cat.train, *cat.validation, *cat.test]:
            if s.is_anomalous and not s.mask_paths:
                problems.append(f"{s.image_path}: anomalous image without masks")
            for m in s.mask_paths:
                if not Path(m).is_file():
                    problems.append(f"{m}: mask missing")
            if (s.split, s.subset) in seen:
                continue
            seen.add((s.split, s.subset))
            for path in [s.image_path, *s.mask_paths]:
                try:
                    with Image.open(path) as im:
                        im.load()
                    opened += 1
                except Exception as exc:  # noqa: BLE001 - any decoder error is the file's
                    problems.append(f"{path}: unreadable image ({type(exc).__name__})")
    return opened, problems


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
