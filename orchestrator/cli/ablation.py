"""Ablations: the same trials on the images as they are and changed one way, side by side.

`orchestrate ablation background` runs every method on every category twice, on the images as
they are and with everything farther than --preprocess-margin pixels from the part blacked
out (train, validation and test images alike; the ground truth unchanged), under one MLflow
parent run, and writes a side-by-side table (original, masked, Δ per metric) and overlay
figures of the same test images in both arms.

``orchestrate ablation``: the thesis' ablations (background removal).
"""

from __future__ import annotations

import argparse

from orchestrator.cli.common import add_job_args, command, csv_list, job_options

BACKGROUND = """Background removal: which methods' maps are fooled by the background.

Both arms (original, masked) of every method x category, one MLflow parent run (experiment
'ablation'); the part is given by the category's roi.png / roi.json or found as the largest
bright region against a dark background (threshold: Otsu on train/good). Prints the table
(original, masked, Δ = masked − original); the parent run holds it (ablation.md,
ablation.csv) with the figures (ablation_<method>_<category>.png)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "ablation", __doc__)
    kinds = p.add_subparsers(dest="kind", metavar="ABLATION", required=True)
    b = command(kinds, "background", BACKGROUND)
    b.add_argument(
        "--methods",
        type=csv_list,
        default=None,
        help="comma-separated (default: every available default method)",
    )
    add_job_args(
        b,
        "ablation",
        1,
        "override a parameter, e.g. --set patchcore.coreset_percentage=0.01",
        preprocess_step=False,
    )
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.ablation import AblationOptions, run_ablation

    opts = AblationOptions(methods=args.methods, kind=args.kind, **job_options(args))
    result = run_ablation(opts)
    if result.failed:
        print(f"{result.failed} trial(s) failed (see the table above and the MLflow runs)")
    return result.exit_code
