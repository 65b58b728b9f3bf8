"""MLflow tracking: the store, survey parent runs, child runs opened from Ray workers, and
finding what a previous survey already finished."""

import os

# MLflow prints "View run ... at <url>" for every run ended against a server; the jobs print
# their own links (the runs page and the parent run) once, at the end.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from orchestrator.tracking.store import (
    DEFAULT_TRACKING_URI,
    find_parent_run,
    get_experiment_id,
    project_commit,
    resolve_tracking_uri,
    start_parent_run,
)
from orchestrator.tracking.trials import (
    ChildRun,
    child_runs,
    finished_trials,
    open_child_run,
    trial_key,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "ChildRun",
    "child_runs",
    "find_parent_run",
    "finished_trials",
    "get_experiment_id",
    "open_child_run",
    "project_commit",
    "resolve_tracking_uri",
    "start_parent_run",
    "trial_key",
]
