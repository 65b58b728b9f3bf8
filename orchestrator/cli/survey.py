"""``orchestrate survey``: every method x every category, tracked in MLflow."""

from __future__ import annotations

import argparse

from orchestrator.cli.common import (
    add_dataset_args,
    add_run_args,
    add_seeds_arg,
    add_sets_arg,
    csv_list,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "survey",
        help="run every method on every category (Ray Tune), track it in MLflow",
        description=(
            "One trial per (method, category), scheduled with Ray Tune, each an MLflow child "
            "run (params, metrics, tags, artifacts) under one survey run, which holds the "
            "summary tables (CSV/Markdown/LaTeX) and a heat-map. With no arguments: the "
            "embedded synthetic dataset, every default method, the quick profile on a "
            "CPU-only machine. Browse the results with `mlflow ui` in the same folder."
        ),
    )
    add_dataset_args(p)
    p.add_argument(
        "--methods",
        type=csv_list,
        default=None,
        help="comma-separated (default: every available default method)",
    )
    add_sets_arg(p, "override a parameter, e.g. --set patchcore.coreset_percentage=0.01")
    add_seeds_arg(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest survey of the experiment, skipping finished trials",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add_run_args(p, experiment="survey", retries=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.survey import SurveyOptions, run_survey

    opts = SurveyOptions(
        dataset=args.dataset,
        dataset_root=args.dataset_root,
        categories=args.categories,
        methods=args.methods,
        source=args.source,
        sets=args.sets,
        tracking_uri=args.tracking_uri,
        ray_address=args.ray_address,
        max_concurrent=args.max_concurrent,
        resume=args.resume,
        experiment=args.experiment,
        profile=args.profile,
        registry=args.registry,
        retries=args.retries,
        device=args.device,
        num_cpus=args.num_cpus,
        output_dir=args.output_dir,
        seeds=args.seeds,
        validate=args.validate,
        trial_timeout=args.trial_timeout,
    )
    result = run_survey(opts)
    if result.failed:
        print(f"{result.failed} trial(s) failed (see the table above and the MLflow runs)")
    return result.exit_code
