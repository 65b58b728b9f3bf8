"""Options shared by the commands that run trials (survey, ensemble)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def command(sub: argparse._SubParsersAction, name: str, doc: str) -> argparse.ArgumentParser:
    """The subcommand ``name``, documented by its module's docstring ``doc``: the first
    paragraph is the one-line help, the second the description of ``--help``; any further
    paragraphs are notes for developers."""
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
    help_ = paragraphs[0].rstrip(".")
    help_ = help_[0].lower() + help_[1:]
    description = paragraphs[1] if len(paragraphs) > 1 else None
    return sub.add_parser(name, help=help_, description=description)


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


def add_preprocess_args(p: argparse.ArgumentParser, step: bool = True) -> None:
    """``--preprocess`` (with ``step``) and its parameters (orchestrator.data.preprocess)."""
    if step:
        p.add_argument(
            "--preprocess",
            choices=("none", "mask-background"),
            default="none",
            help="a step applied to train, validation and test images alike: mask-background "
            "blacks out everything farther than --preprocess-margin from the part (default none)",
        )
    p.add_argument(
        "--preprocess-margin",
        type=int,
        default=8,
        metavar="PIXELS",
        help="mask-background: pixels kept around the part (default 8)",
    )
    p.add_argument(
        "--preprocess-object",
        choices=("auto", "largest-component", "roi"),
        default="auto",
        help="mask-background: where the part is: roi (the category's roi.png or roi.json), "
        "largest-component (the largest bright region against a dark background, threshold by "
        "Otsu on train/good), auto (default: roi when the category has one, else "
        "largest-component)",
    )


def add_job_args(
    p: argparse.ArgumentParser,
    kind: str,
    retries: int,
    sets_help: str,
    sets_metavar: str = "METHOD.KEY=VALUE",
    preprocess_step: bool = True,
) -> None:
    """Every option of a trial job (orchestrator.jobs.JobOptions): the dataset, ``--set``,
    ``--seeds``, the preprocessing, ``--resume`` and the run options; ``kind``: survey,
    ensemble or ablation (``preprocess_step``: False where the job picks the step itself)."""
    add_dataset_args(p)
    add_sets_arg(p, sets_help, metavar=sets_metavar)
    add_seeds_arg(p)
    add_preprocess_args(p, step=preprocess_step)
    if not preprocess_step:
        p.set_defaults(preprocess="none")
    p.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the latest {kind} run of the experiment, skipping finished trials",
    )
    add_run_args(p, experiment=kind, retries=retries)


def add_run_args(p: argparse.ArgumentParser, experiment: str, retries: int) -> None:
    """Source, tracking, scheduling, profile and registry options (orchestrator.jobs)."""
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
        "--artifact-root",
        default=None,
        metavar="DIR_OR_URI",
        help="where a new experiment keeps its artifacts (default: mlartifacts/ beside a "
        "sqlite store; a server's own setting otherwise)",
    )
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
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where trials that ask for a GPU run (default: the GPU when the cluster has one)",
    )
    add_allow_dirty_arg(p)
    p.add_argument(
        "--curve-points",
        type=int,
        default=4,
        metavar="N",
        help="training curves: every method that trains logs its loss per epoch and, at about "
        "N evenly spaced epochs, its validation image AUROC (plotting only, never to pick an "
        "epoch; default 4, 0: loss only)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the trials one by one in this process without Ray (debugging)",
    )


def add_method_args(p: argparse.ArgumentParser, example: str) -> None:
    """What a command on one method takes (check, parity): the registry, profile, ``--set
    KEY=VALUE`` into ``args.sets``, the device and ``--allow-dirty``."""
    p.add_argument("--registry", type=Path, default=None, help="a user registry file merged in")
    p.add_argument("--profile", default="quick", help="registry profile: quick (default) or paper")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a parameter (YAML value), repeatable, e.g. --set {example}",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_allow_dirty_arg(p)


def add_allow_dirty_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="with --source upstream: run a checkout that is modified or off its pin "
        "(results tagged vendor_dirty=true)",
    )


#: The orchestrator.jobs.JobOptions fields the options above (and the dataset's) fill.
JOB_FIELDS = (
    "dataset",
    "dataset_root",
    "categories",
    "source",
    "sets",
    "tracking_uri",
    "experiment",
    "ray_address",
    "num_cpus",
    "max_concurrent",
    "profile",
    "registry",
    "retries",
    "output_dir",
    "resume",
    "seeds",
    "validate",
    "trial_timeout",
    "device",
    "in_process",
    "allow_dirty",
    "artifact_root",
    "preprocess",
    "preprocess_margin",
    "preprocess_object",
    "curve_points",
)


def job_options(args: argparse.Namespace) -> dict[str, Any]:
    """The JobOptions keyword arguments from parsed arguments."""
    return {k: getattr(args, k) for k in JOB_FIELDS}
