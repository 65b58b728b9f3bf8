"""``orchestrate ensemble``: the feature-level ensemble network vs output-level ensembles."""

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
        "ensemble",
        help="feature-level ensemble network of fitted members vs output-level ensembles",
        description=(
            "Fit each member once per category (cached, reused by every combination), then "
            "one Ray Tune trial per (member combination, category) that compares the members "
            "alone, output-level ensembles (mean and CAWPE of calibrated scores) and the "
            "thesis' feature-level network (per-member PCA, SimpleNet-style discriminator, "
            "calibrated output). Every trial is an MLflow child run; the parent run holds the "
            "comparison table."
        ),
    )
    p.add_argument(
        "--members",
        type=csv_list,
        required=True,
        help="comma-separated member methods, e.g. patchcore,simplenet",
    )
    p.add_argument(
        "--combinations",
        choices=("all", "pairs", "given"),
        default="given",
        help="given: the members together (default); pairs: every pair; "
        "all: every subset of two or more",
    )
    add_dataset_args(p)
    p.add_argument(
        "--fusion",
        choices=("ift", "global"),
        default="ift",
        help="ift: PCA per member (default); global: one PCA after concatenation",
    )
    p.add_argument(
        "--components",
        type=int,
        default=None,
        help="total PCA components kept (default: the first member's channels)",
    )
    add_sets_arg(
        p,
        "ensemble.epochs=10, ensemble.variance=0.95, patchcore.coreset_percentage=0.01, ... "
        "(repeatable)",
        metavar="WHO.KEY=VALUE",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest ensemble run of the experiment, skipping finished trials",
    )
    add_seeds_arg(p)
    add_run_args(p, experiment="ensemble", retries=0)
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the trials one by one in this process without Ray (debugging)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.ensemble.run import EnsembleOptions, run_ensemble
    from orchestrator.errors import UserError

    if args.components is not None and args.components < 1:
        raise UserError("--components must be >= 1")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UserError("--max-concurrent must be >= 1")
    opts = EnsembleOptions(
        members=args.members,
        combinations=args.combinations,
        dataset=args.dataset,
        dataset_root=args.dataset_root,
        categories=args.categories,
        fusion=args.fusion,
        components=args.components,
        sets=args.sets,
        source=args.source,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        max_concurrent=args.max_concurrent,
        profile=args.profile,
        registry=args.registry,
        retries=args.retries,
        output_dir=args.output_dir,
        in_process=args.in_process,
        resume=args.resume,
        seeds=args.seeds,
        validate=args.validate,
        trial_timeout=args.trial_timeout,
    )
    return run_ensemble(opts).exit_code
