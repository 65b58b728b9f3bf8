"""Re-create a survey's tables and figures from what MLflow recorded, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import UserError


def survey_rows(uri: str, experiment: str, parent_run_id: str | None = None) -> tuple[str, list]:
    """``(parent_run_id, rows)`` of a survey (the latest in ``experiment`` by default): per
    (method, category) the newest complete child run, or its failure."""
    from mlflow import MlflowClient

    from orchestrator.tracking import find_parent_run, get_experiment_id
    from orchestrator.tracking.trials import KEY_TAG, child_runs, is_complete

    exp_id = get_experiment_id(uri, experiment, create=False)
    if exp_id is None:
        raise UserError(f"no MLflow experiment {experiment!r} in {uri}")
    if parent_run_id is None:
        parent = find_parent_run(uri, exp_id)
        if parent is None:
            raise UserError(f"experiment {experiment!r} has no survey run")
        parent_run_id = parent.info.run_id
    else:
        from mlflow.exceptions import MlflowException

        try:
            run = MlflowClient(tracking_uri=uri).get_run(parent_run_id)
        except MlflowException as exc:
            raise UserError(f"no run {parent_run_id!r} in {uri}") from exc
        if run.info.experiment_id != exp_id:
            raise UserError(f"run {parent_run_id} is not in experiment {experiment!r}")
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in child_runs(uri, exp_id, parent_run_id):  # newest first
        tags = run.data.tags
        ident = (tags.get("method", "?"), tags.get("category", "?"), tags.get(KEY_TAG, ""))
        row = {
            "method": ident[0],
            "category": ident[1],
            "profile": tags.get("profile", ""),
            "seed": _seed(tags.get("seed")),
            "source": tags.get("source", ""),
            "run_id": run.info.run_id,
        }
        if is_complete(run):
            if ident not in best or best[ident]["status"] != "done":
                best[ident] = {**row, "status": "done", **run.data.metrics}
        elif ident not in best and run.info.status == "FAILED":
            best[ident] = {**row, "status": "failed", "error": tags.get("error", "failed")}
    return parent_run_id, list(best.values())


def report(uri: str, experiment: str, out_dir: Path, parent_run_id: str | None = None):
    """Write the summary reports of a survey into ``out_dir``; returns (rows, files)."""
    from orchestrator.reports.tables import write_reports

    parent_run_id, rows = survey_rows(uri, experiment, parent_run_id)
    if not rows:
        raise UserError(f"survey run {parent_run_id} has no trial runs yet")
    return parent_run_id, rows, write_reports(rows, out_dir)


def _seed(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None
