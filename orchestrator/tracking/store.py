"""The MLflow store, experiments and survey parent runs."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.paths import PROJECT_NAME, source_checkout

#: What ``mlflow ui`` opens when started with no arguments in the same folder (mlflow >= 3:
#: a SQLite database ``mlflow.db`` in the working directory).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "orchestrator.role"


#: URI schemes MLflow stores live behind (database back ends, a tracking server)
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def resolve_tracking_uri(uri: str | None, must_exist: bool = False) -> str:
    """An absolute form of ``uri`` (default ``$MLFLOW_TRACKING_URI``, else
    :data:`DEFAULT_TRACKING_URI`), so that Ray workers with another working directory write to
    the same store. Checked before anything is written: a local database's folder must exist
    (and the database itself when ``must_exist``: reading never creates a store); a plain
    folder (MLflow 3's retired file store) and unknown schemes are refused."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        if not uri.startswith("sqlite:////"):
            uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
        _check_sqlite(Path(uri[len("sqlite:///") :]), must_exist)
        return uri
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true"):
            return Path(uri.removeprefix("file://")).resolve().as_uri()
        raise UserError(
            f"tracking URI {uri!r} is a folder (MLflow 3's retired file store); use "
            "sqlite:///<folder>/mlflow.db, or a server URL"
        )
    if scheme not in STORE_SCHEMES:
        raise UserError(
            f"tracking URI {uri!r}: unknown scheme {scheme!r} "
            f"(expected one of {', '.join(STORE_SCHEMES)})"
        )
    return uri


def _check_sqlite(db: Path, must_exist: bool) -> None:
    parent = db.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"tracking URI: {parent} is a file, not a folder for {db.name}")
    if not parent.is_dir():
        raise UserError(f"tracking URI: folder {parent} does not exist (create it first)")
    if db.exists() and not db.is_file():
        raise UserError(f"tracking URI: {db} is not a database file")
    if must_exist and not db.exists():
        raise UserError(
            f"no MLflow store at {db} (nothing has been tracked there yet; pass --tracking-uri)"
        )


def check_tracking_server(uri: str, timeout: float | None = None) -> None:
    """One line, within ``timeout`` seconds, when a tracking server (http/https) does not
    answer (MLflow itself would retry for minutes). Any HTTP answer counts as reachable."""
    from orchestrator.netcheck import connect_timeout

    if not uri.startswith(("http://", "https://")):
        return
    timeout = connect_timeout() if timeout is None else timeout
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot reach the MLflow tracking server {uri} ({why}; waited at most {timeout:g} s)"
        ) from exc


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def default_artifact_root(uri: str) -> str | None:
    """Where the artifacts of an experiment created here go: beside a local database
    (``<its folder>/mlartifacts``, as ``mlflow server`` does), so every run of one store keeps
    its files in one place whatever folder a job was started from; None for a server (it
    decides)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()


def get_experiment_id(
    uri: str, name: str, create: bool = True, artifact_root: str | None = None
) -> str | None:
    """The id of experiment ``name``; created when missing and ``create``, its artifacts
    under ``artifact_root`` (default :func:`default_artifact_root`). An existing experiment
    keeps the artifact location it was created with. Both get the tags of
    :func:`ui_experiment_tags` that they lack (a user's own choice of kind or view stays)."""
    import time

    from orchestrator.tracking.ui import add_ui_tags, ui_experiment_tags

    client = _client(uri)
    try:
        exp = client.get_experiment_by_name(name)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad URI
        raise UserError(f"cannot reach the MLflow store {uri}: {exc}") from exc
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise UserError(f"experiment {name!r} is deleted; restore it or pick another name")
        add_ui_tags(client, exp)
        return exp.experiment_id
    if not create:
        return None
    root = artifact_root or default_artifact_root(uri)
    if root and "://" not in root:
        root = Path(root).resolve().as_uri()
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # one folder per experiment
    return client.create_experiment(
        name,
        artifact_location=f"{root}/{folder}" if root else None,
        tags=ui_experiment_tags(int(time.time() * 1000)),
    )


def find_parent_run(
    uri: str, experiment_id: str, kind: str = "survey", match: Callable[[Any], bool] | None = None
):
    """The latest parent run of ``kind`` in the experiment (an ``mlflow.entities.Run``) for
    which ``match(run)`` holds (default: any)."""
    runs = _client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{kind}'",
        order_by=["attributes.start_time DESC"],
        max_results=1 if match is None else 200,
    )
    return next((r for r in runs if match is None or match(r)), None)


def start_parent_run(
    uri: str,
    experiment_id: str,
    tags: dict[str, str],
    resume: bool = False,
    kind: str = "survey",
    match: Callable[[Any], bool] | None = None,
) -> tuple[str, bool]:
    """A parent run id: the latest one of ``kind`` (that ``match`` accepts) when ``resume``
    (set RUNNING again), else a new one. Returns ``(run_id, reused)``."""
    client = _client(uri)
    if resume:
        run = find_parent_run(uri, experiment_id, kind, match)
        if run is not None:
            client.update_run(run.info.run_id, status="RUNNING")
            return run.info.run_id, True
    run = client.create_run(experiment_id, tags={**tags, PARENT_TAG: kind})
    return run.info.run_id, False


def source_tags(commit: str, command: str) -> dict[str, str]:
    """MLflow's own source tags (the UI's Source, Version and User columns) of a run that
    ``orchestrate COMMAND`` made at project ``commit``."""
    import getpass

    tags = {
        "mlflow.source.name": f"orchestrate {command}",
        "mlflow.source.type": "LOCAL",
    }
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        pass
    if re.fullmatch(r"[0-9a-f]{40}", commit or ""):
        tags["mlflow.source.git.commit"] = commit
    return tags


def dataset_input(name: str, digest: str, source: str, context: str = "train+test"):
    """What ``MlflowClient.log_inputs`` records for a category: its name, fingerprint
    (digest) and folder (the UI's Dataset column)."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(name, digest, "local", json.dumps({"uri": source}))
    return DatasetInput(dataset, [InputTag("mlflow.data.context", context)])


def project_commit(root: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the project's source checkout (``root``, default: the one
    this package runs from); an installed copy is named by its version
    (``ad-orchestrator==0.1.0``), never by a git repository it happens to sit in."""
    root = root or source_checkout()
    if root is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"{PROJECT_NAME}=={version(PROJECT_NAME)}"
        except PackageNotFoundError:
            return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
