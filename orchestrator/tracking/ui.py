"""What makes MLflow 3's UI open this project's experiments where they should: the classic
(model-training) pages rather than the GenAI ones, and a saved runs-table view with the
metrics people compare; the URLs a job prints at its end."""

from __future__ import annotations

#: MLflow 3's experiment-kind tag and its "Machine learning" value, as the UI's "experiment
#: type" selector writes them: its code picks an experiment's pages by this tag where its
#: sidebar switch is off (3.17 builds the switch in, so there the tag is a fallback)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_EXPERIMENT_KIND = "custom_model_development"
#: The UI's query parameter for its sidebar switch "GenAI" / "Model training": MLflow 3.17 picks
#: an experiment's pages by it (default: GenAI, or what the user last chose in that browser)
WORKFLOW_QUERY = "workflowType=machine_learning"
#: Experiment tag prefix of the UI's saved runs-table views (opened by ``viewStateShareKey``)
SAVED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: The saved view this project puts in each of its experiments, and its metric columns (the
#: first one sorts the table, best first)
RUNS_VIEW_KEY = "orchestrator-auroc"
RUNS_VIEW_NAME = "AUROC (orchestrator)"
RUNS_VIEW_METRICS = ("image_auroc", "image_auroc_mean", "pixel_auroc", "au_spro_0.05")


def ui_experiment_tags(created_ms: int) -> dict[str, str]:
    """Experiment tags for MLflow's UI: the classic (model training) kind, and a saved view of
    the runs table that shows :data:`RUNS_VIEW_METRICS` first, sorted by image AUROC (a table
    sorted by a metric lists child runs flat, not folded under their survey run)."""
    import json

    metrics = [f"metrics.`{m}`" for m in RUNS_VIEW_METRICS]
    defaults = [f"attributes.`{a}`" for a in ("Source", "Models", "Dataset")]  # the UI's own
    state = {
        "orderByKey": metrics[0],
        "orderByAsc": False,
        "selectedColumns": [*metrics, *defaults],
        "columnOrder": metrics,
    }
    view = {
        "name": RUNS_VIEW_NAME,
        "createdAt": created_ms,
        "updatedAt": created_ms,
        "state": json.dumps(state),
    }
    return {
        EXPERIMENT_KIND_TAG: CLASSIC_EXPERIMENT_KIND,
        SAVED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY: json.dumps(view),
    }


def add_ui_tags(client, exp) -> None:
    """Give an existing experiment the :func:`ui_experiment_tags` it lacks; a store that
    refuses (read-only access) gets a warning, not an error."""
    import sys

    missing = {
        k: v for k, v in ui_experiment_tags(exp.creation_time or 0).items() if k not in exp.tags
    }
    try:
        for key, value in missing.items():
            client.set_experiment_tag(exp.experiment_id, key, value)
    except Exception as exc:  # noqa: BLE001 - the UI's comfort must not stop a job
        print(f"could not tag experiment {exp.name!r} for the MLflow UI: {exc}", file=sys.stderr)


def runs_page_url(base_url: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI at ``base_url`` (``mlflow ui``'s address):
    model-training pages, with the saved view of :func:`ui_experiment_tags`."""
    from urllib.parse import quote

    return (
        f"{base_url.rstrip('/')}/#/experiments/{quote(str(experiment_id), safe='')}/runs"
        f"?{WORKFLOW_QUERY}&viewStateShareKey={RUNS_VIEW_KEY}"
    )


def run_page_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """One run's page in the MLflow UI at ``base_url``, on the model-training pages."""
    from urllib.parse import quote

    exp, run = quote(str(experiment_id), safe=""), quote(str(run_id), safe="")
    return f"{base_url.rstrip('/')}/#/experiments/{exp}/runs/{run}?{WORKFLOW_QUERY}"
