"""Re-create a survey's tables and figures from what MLflow recorded, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import UserError


def survey_rows(uri: str, experiment: str, parent_run_id: str | None = None) -> tuple[str, list]:
    """``(parent_run_id, rows)`` of a survey (the latest in ``experiment`` by default): per
    (method, category) the newest complete child run, or its failure."""
    from mlflow import MlflowClient

    from orchestrator.data.preprocess import label as preprocess_label
    from orchestrator.tracking import find_parent_run, get_experiment_id
    from orchestrator.tracking.trials import KEY_TAG, child_runs, is_complete

    exp_id = get_experiment_id(uri, experiment, create=False)
    if exp_id is None:
        raise UserError(f"no MLflow experiment {experiment!r} in {uri}")
    if parent_run_id is None:  # the latest survey, or ablation (its trials: both arms)
        found = [find_parent_run(uri, exp_id, kind) for kind in ("survey", "ablation")]
        parent = max((r for r in found if r), key=lambda r: r.info.start_time, default=None)
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
            "preprocess": preprocess_label(tags),
            "run_id": run.info.run_id,
        }
        if is_complete(run):
            if ident not in best or best[ident]["status"] != "done":
                best[ident] = {**row, "status": "done", **run.data.metrics}
        elif ident not in best and run.info.status == "FAILED":
            best[ident] = {**row, "status": "failed", "error": tags.get("error", "failed")}
    return parent_run_id, list(best.values())


def report(uri: str, experiment: str, out_dir: Path, parent_run_id: str | None = None):
    """Write the summary reports of a survey (and its training curves) into ``out_dir``;
    returns (rows, files)."""
    from orchestrator.reports.curves import write_training_curves
    from orchestrator.reports.tables import write_reports

    parent_run_id, rows = survey_rows(uri, experiment, parent_run_id)
    if not rows:
        raise UserError(f"survey run {parent_run_id} has no trial runs yet")
    files = write_reports(rows, out_dir)
    files += _ablation_tables(uri, parent_run_id, rows, Path(out_dir))
    return parent_run_id, rows, files + write_training_curves(uri, rows, Path(out_dir))


def _ablation_tables(uri: str, parent_run_id: str, rows, out_dir: Path) -> list[Path]:
    """An ablation's side-by-side table (ablation.md, ablation.csv), none for a survey."""
    from mlflow import MlflowClient

    from orchestrator.data.preprocess import label
    from orchestrator.reports.ablation import write_tables
    from orchestrator.tracking.store import PARENT_TAG

    tags = MlflowClient(tracking_uri=uri).get_run(parent_run_id).data.tags
    if tags.get(PARENT_TAG) != "ablation":
        return []
    masked = label({**tags, "preprocess": tags.get("preprocess", "").split(" vs ")[-1]})
    write_tables(rows, out_dir, masked)
    return [out_dir / "ablation.md", out_dir / "ablation.csv"]


def _seed(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None
