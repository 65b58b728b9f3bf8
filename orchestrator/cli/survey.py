"""``orchestrate survey``: every method x every category, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


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
    p.add_argument(
        "--dataset",
        default="synthetic",
        help="synthetic (default), loco, mvtec, or a folder of LOCO-format categories",
    )
    p.add_argument("--dataset-root", type=Path, default=None, help="where the dataset lives")
    p.add_argument("--categories", type=_csv, default=None, help="comma-separated subset")
    p.add_argument(
        "--methods",
        type=_csv,
        default=None,
        help="comma-separated (default: every available default method)",
    )
    p.add_argument(
        "--source",
        choices=("auto", "upstream", "native"),
        default="auto",
        help="upstream code, the native implementation, or auto (default)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="override a parameter, e.g. --set patchcore.coreset_percentage=0.01",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: sqlite:///mlflow.db, what `mlflow ui` opens here)",
    )
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: as many as resources allow)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest survey of the experiment, skipping finished trials",
    )
    p.add_argument("--experiment", default="survey", help="MLflow experiment name")
    p.add_argument(
        "--profile",
        choices=("paper", "quick"),
        default=None,
        help="paper settings (default with a GPU) or quick (default on CPU only)",
    )
    p.add_argument("--registry", type=Path, default=None, help="a user registry file merged in")
    p.add_argument("--retries", type=int, default=1, help="retries of a failed trial (default 1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="also write the summary reports to this folder",
    )
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
    )
    result = run_survey(opts)
    if result.failed:
        print(f"{result.failed} trial(s) failed (see the table above and the MLflow runs)")
    return result.exit_code
