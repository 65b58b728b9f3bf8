"""Run every method on every category (Ray Tune), track it in MLflow.

One trial per (method, category), scheduled with Ray Tune, each an MLflow child run (params,
metrics, tags, artifacts) under one survey run, which holds the summary tables
(CSV/Markdown/LaTeX) and a heat-map. With no arguments: the embedded synthetic dataset,
every default method, the quick profile on a CPU-only machine. Browse the results with
`mlflow ui` in the same folder.

``orchestrate survey``: every method x every category, tracked in MLflow.
"""

from __future__ import annotations

import argparse

from orchestrator.cli.common import add_job_args, command, csv_list, job_options


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "survey", __doc__)
    p.add_argument(
        "--methods",
        type=csv_list,
        default=None,
        help="comma-separated (default: every available default method)",
    )
    p.add_argument(
        "--save-maps",
        action="store_true",
        help="also log every test image's anomaly map (anomaly_maps/<category>/test/<type>/"
        "<id>.tiff, the official LOCO layout that orchestrate evaluate reads)",
    )
    add_job_args(
        p, "survey", 1, "override a parameter, e.g. --set patchcore.coreset_percentage=0.01"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.survey import SurveyOptions, run_survey

    opts = SurveyOptions(methods=args.methods, save_maps=args.save_maps, **job_options(args))
    result = run_survey(opts)
    if result.failed:
        print(f"{result.failed} trial(s) failed (see the table above and the MLflow runs)")
    return result.exit_code
