"""The MLflow store, experiments and survey parent runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.paths import REPO_ROOT

#: What ``mlflow ui`` opens when started with no arguments in the same folder (mlflow >= 3:
#: a SQLite database ``mlflow.db`` in the working directory).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_TAG = "orchestrator.role"


def resolve_tracking_uri(uri: str | None) -> str:
    """An absolute form of ``uri`` (default :data:`DEFAULT_TRACKING_URI`), so that Ray workers
    with another working directory write to the same store."""
    uri = uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:  # a plain folder: a file store
        return Path(uri).resolve().as_uri()
    return uri


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def get_experiment_id(uri: str, name: str, create: bool = True) -> str | None:
    """The id of experiment ``name`` (created when missing and ``create``)."""
    client = _client(uri)
    try:
        exp = client.get_experiment_by_name(name)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad URI
        raise UserError(f"cannot reach the MLflow store {uri}: {exc}") from exc
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise UserError(f"experiment {name!r} is deleted; restore it or pick another name")
        return exp.experiment_id
    if not create:
        return None
    return client.create_experiment(name)


def find_parent_run(uri: str, experiment_id: str, kind: str = "survey"):
    """The latest parent run of ``kind`` in the experiment (an ``mlflow.entities.Run``)."""
    runs = _client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{kind}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def start_parent_run(
    uri: str, experiment_id: str, tags: dict[str, str], resume: bool = False, kind: str = "survey"
) -> tuple[str, bool]:
    """A parent run id: the latest one of ``kind`` when ``resume`` (set RUNNING again), else a
    new one. Returns ``(run_id, reused)``."""
    client = _client(uri)
    if resume:
        run = find_parent_run(uri, experiment_id, kind)
        if run is not None:
            client.update_run(run.info.run_id, status="RUNNING")
            return run.info.run_id, True
    run = client.create_run(experiment_id, tags={**tags, PARENT_TAG: kind})
    return run.info.run_id, False


def project_commit(root: Path = REPO_ROOT) -> str:
    """``git rev-parse HEAD`` of the project (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
