"""Register a trial's detector in the MLflow model registry.

Registers runs:/RUN_ID/model (a survey or ensemble trial's MLflow Model, with its
calibration and threshold) under NAME, as a new version when NAME exists. Then
`orchestrate predict --model models:/NAME/VERSION ...`, `mlflow.pyfunc.load_model(
"models:/NAME/VERSION")` or `mlflow models serve -m models:/NAME/VERSION --env-manager local`.
"""

from __future__ import annotations

import argparse

from orchestrator.cli.common import command
from orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "register", __doc__)
    p.add_argument("--run", required=True, metavar="RUN_ID", help="the trial's MLflow run id")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    p.set_defaults(func=run)


def register_run(uri: str, run_id: str, name: str) -> str:
    """Register ``runs:/run_id/model`` as ``name``; returns the new version."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - unknown id, unreachable store
        raise UserError(f"no run {run_id!r} in {uri}") from exc
    files = {a.path for a in client.list_artifacts(run_id, "model")}
    if "model/MLmodel" not in files:
        raise UserError(
            f"run {run_id} ({run.data.tags.get('mlflow.runName', '?')}) has no MLflow Model "
            "(only survey and ensemble trials do)"
        )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    version = mlflow.register_model(f"runs:/{run_id}/model", name)
    return str(version.version)


def run(args: argparse.Namespace) -> int:
    from orchestrator.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, must_exist=True)
    version = register_run(uri, args.run, args.name)
    print(f"registered {args.name} version {version}: models:/{args.name}/{version}")
    return 0
