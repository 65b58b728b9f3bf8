"""Check that this machine can run a survey, one line per part (ok / warn / FAIL).

One line per check, ok / warn / FAIL with a short reason: Python, torch, CUDA (GPUs), faiss
(GPU or CPU build), the Ray cluster (--ray-address or $RAY_ADDRESS: reachable within
$ORCHESTRATOR_CONNECT_TIMEOUT seconds, its resources; else the local Ray a survey would
start), the MLflow tracking URI (reachable and writable; on a server a test experiment is
created and deleted), the upstream checkouts (at their pins, clean), the default methods'
backbone weights (found) and a dataset (valid; a large one gets a quick check). Exit 0 when
nothing FAILs (warnings allowed), 2 otherwise.

``orchestrate doctor``: the checks live in orchestrator.doctor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.common import add_dataset_args, command
from orchestrator.doctor import FULL_CHECK_MAX_FILES  # standard library only: cheap


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "doctor", __doc__)
    p.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster to check, HOST:PORT (default: $RAY_ADDRESS, else the local Ray "
        "a survey would start, which is not started)",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="the MLflow store to check (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    add_dataset_args(p)
    p.add_argument("--registry", type=Path, default=None, help="a user registry file merged in")
    p.add_argument(
        "--full-dataset-check",
        action="store_true",
        help="read every file of the dataset, however large (default: only a dataset of at "
        f"most {FULL_CHECK_MAX_FILES} files; a larger one gets a quick check)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.doctor import FAIL, WARN, DoctorOptions, run_checks

    opts = DoctorOptions(
        ray_address=args.ray_address,
        tracking_uri=args.tracking_uri,
        dataset=args.dataset,
        dataset_root=args.dataset_root,
        categories=args.categories,
        registry=args.registry,
        full_dataset_check=args.full_dataset_check,
    )
    counts = {FAIL: 0, WARN: 0}
    for result in run_checks(opts):
        print(result.line(), flush=True)
        counts[result.status] = counts.get(result.status, 0) + 1
    print(f"doctor: {counts[FAIL]} FAIL, {counts[WARN]} warn", file=sys.stderr)
    return 2 if counts[FAIL] else 0
