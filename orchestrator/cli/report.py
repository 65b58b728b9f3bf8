"""Re-create a survey's summary tables and heat-map from MLflow.

Reads the survey run of an MLflow experiment (the latest, or --run-id) and its trial runs,
writes the summary tables (CSV, Markdown, LaTeX) and the heat-map, and prints the table.

``orchestrate report``: a survey's tables and figures, re-created from MLflow alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import command
from orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "report", __doc__)
    p.add_argument("--experiment", default="survey", help="MLflow experiment name")
    p.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default sqlite:///mlflow.db)"
    )
    p.add_argument("--run-id", default=None, help="a survey (parent) run id (default: latest)")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where to write (default: reports/<experiment>)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.reports import console_summary
    from orchestrator.reports.from_mlflow import report
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking.store import check_tracking_server

    uri = resolve_tracking_uri(args.tracking_uri, must_exist=True)  # reading creates nothing
    check_tracking_server(uri)
    out = args.output_dir or Path("reports") / args.experiment
    if out.exists() and not out.is_dir():
        raise UserError(f"--output-dir {out} is a file")
    parent, rows, files = report(uri, args.experiment, out, args.run_id)
    print(console_summary(rows))
    if out / "ablation.md" in files:  # an ablation's parent run: its side-by-side table too
        print((out / "ablation.md").read_text())
    print(f"survey run {parent}: wrote {len(files)} files to {out}")
    return 0
