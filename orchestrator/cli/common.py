"""Options shared by the commands that run trials (survey, ensemble)."""

from __future__ import annotations

import argparse
from pathlib import Path


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def seed_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct non-negative integers)."""
    try:
        seeds = [int(t) for t in csv_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {text!r}")
    return seeds


def add_sets_arg(p: argparse.ArgumentParser, help: str, metavar: str = "METHOD.KEY=VALUE") -> None:
    """``--set WHO.KEY=VALUE`` (repeatable) into ``args.sets``."""
    p.add_argument("--set", dest="sets", action="append", default=[], metavar=metavar, help=help)


def add_seeds_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        metavar="S1,S2,...",
        help="one trial per seed (e.g. 0,1,2); tables show mean ± std and n "
        "(default: one trial with each config's own seed)",
    )


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        default="synthetic",
        help="synthetic (default), loco, mvtec, or a folder of LOCO-format categories",
    )
    p.add_argument("--dataset-root", type=Path, default=None, help="where the dataset lives")
    p.add_argument("--categories", type=csv_list, default=None, help="comma-separated subset")


def add_run_args(p: argparse.ArgumentParser, experiment: str, retries: int) -> None:
    """Source, tracking, scheduling, profile and registry options."""
    p.add_argument(
        "--source",
        choices=("auto", "upstream", "native"),
        default="auto",
        help="upstream code, the native implementation, or auto (default)",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db, what "
        "`mlflow ui` opens here); a server must answer within $ORCHESTRATOR_CONNECT_TIMEOUT "
        "seconds (default 10)",
    )
    p.add_argument("--experiment", default=experiment, help="MLflow experiment name")
    p.add_argument(
        "--ray-address",
        default=None,
        help="join a Ray cluster at HOST:PORT (default: $RAY_ADDRESS, else a local Ray bound "
        "to 127.0.0.1); it must answer within $ORCHESTRATOR_CONNECT_TIMEOUT seconds",
    )
    p.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray (>= 1; default: all)"
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: as many as resources allow)",
    )
    p.add_argument(
        "--profile",
        choices=("paper", "quick"),
        default=None,
        help="paper settings (default with a GPU) or quick (default on CPU only)",
    )
    p.add_argument("--registry", type=Path, default=None, help="a user registry file merged in")
    p.add_argument(
        "--retries",
        type=int,
        default=retries,
        help=f"retries of a failed trial (default {retries})",
    )
    p.add_argument(
        "--output-dir", type=Path, default=None, help="also write the reports to this folder"
    )
    p.add_argument(
        "--trial-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a trial running longer fails (not retried); default: no limit",
    )
    p.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="skip the dataset check before the trials (`orchestrate datasets check`), for "
        "data known to be good",
    )
