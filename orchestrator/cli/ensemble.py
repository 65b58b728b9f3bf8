"""Feature-level ensemble network of fitted members vs output-level ensembles.

Fit each member once per category (cached, reused by every combination), then one Ray Tune
trial per (member combination, category) that compares the members alone, output-level
ensembles (mean and CAWPE of calibrated scores) and the thesis' feature-level network (per-
member PCA, SimpleNet-style discriminator, calibrated output). Every trial is an MLflow
child run; the parent run holds the comparison table.

``orchestrate ensemble``: the feature-level ensemble network vs output-level ensembles.
"""

from __future__ import annotations

import argparse

from orchestrator.cli.common import add_job_args, command, csv_list, job_options


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "ensemble", __doc__)
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
    add_job_args(
        p,
        "ensemble",
        0,
        "ensemble.epochs=10, ensemble.variance=0.95, patchcore.coreset_percentage=0.01, ... "
        "(repeatable)",
        sets_metavar="WHO.KEY=VALUE",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.ensemble.run import EnsembleOptions, run_ensemble

    opts = EnsembleOptions(
        members=args.members,
        combinations=args.combinations,
        fusion=args.fusion,
        components=args.components,
        **job_options(args),
    )
    return run_ensemble(opts).exit_code
