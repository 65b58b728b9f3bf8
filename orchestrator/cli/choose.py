"""Choose a parameter's value on validation data (synthetic anomalies).

Fit METHOD once per candidate value on each category's training images and score it on the
category's validation set: its validation/good images (or a held-out share of train/good)
plus synthetic cut-paste and Perlin-patch anomalies (orchestrator.data.validation). Prints
the validation metrics per value and the value with the best mean. The test set is never
read.

``orchestrate choose``: pick one parameter's value on validation data (never test data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import add_dataset_args, add_sets_arg, command


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "choose", __doc__)
    p.add_argument("method", help="a registered method, or `ensemble` (the feature-level network)")
    p.add_argument(
        "--members",
        default="patchcore,simplenet",
        help="with `ensemble`: its members (default patchcore,simplenet), fitted once per "
        "category at --profile and reused for every candidate value",
    )
    p.add_argument("--param", required=True, help="the parameter to choose, e.g. noise_std")
    p.add_argument(
        "--values",
        required=True,
        help="candidates: comma-separated scalars (0.015,0.05) or a YAML list ([[4,4],[16,16]])",
    )
    add_dataset_args(p)
    p.add_argument("--profile", choices=("paper", "quick"), default="quick")
    p.add_argument("--source", choices=("native", "upstream"), default="native")
    p.add_argument(
        "--metric",
        default="image_auroc",
        help="validation metric to maximise (default image_auroc; e.g. pixel_auroc)",
    )
    p.add_argument(
        "--tie-break",
        default="pixel_auroc",
        help="validation metric that breaks a tie on --metric (default pixel_auroc; then the "
        "order of --values)",
    )
    add_sets_arg(p, "fix another parameter while choosing (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic anomalies")
    p.add_argument("--registry", type=Path, default=None, help="a user registry merged in")
    p.add_argument("--output", type=Path, default=None, help="write all rows to this CSV")
    p.set_defaults(func=run)


def parse_values(text: str) -> list:
    """``"0.1,0.2"`` -> ``[0.1, 0.2]``; ``"[[4,4],[8,8]]"`` (a YAML list) -> its items."""
    import yaml

    from orchestrator.cli.common import csv_list
    from orchestrator.errors import UserError

    try:
        if text.strip().startswith("[["):
            values = yaml.safe_load(text)
        else:
            values = [yaml.safe_load(v) for v in csv_list(text)]
    except yaml.YAMLError as exc:
        raise UserError(f"--values {text!r}: not comma-separated values or a YAML list") from exc
    if not isinstance(values, list) or not values:
        raise UserError(f"--values {text!r}: no candidate values")
    return values


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from orchestrator.data import load_dataset
    from orchestrator.preflight import parse_sets
    from orchestrator.registry import load_registry
    from orchestrator.selection import choose_on_validation

    registry = load_registry(args.registry)
    values = parse_values(args.values)
    overrides = parse_sets(args.sets, [args.method]).get(args.method, {})
    if args.method == "ensemble":
        from orchestrator.cli.common import csv_list
        from orchestrator.ensemble.adapter import FeatureEnsemble

        cls = FeatureEnsemble
        config = dict(FeatureEnsemble.default_config) | {
            "members": csv_list(args.members),
            "member_profile": args.profile,
            "member_source": args.source,
            "registry": str(args.registry) if args.registry else None,
        }
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            from orchestrator.errors import UserError

            raise UserError(f"ensemble: unknown parameter(s) {', '.join(unknown)}")
        config |= overrides
    else:
        entry = registry.get(args.method)
        cls = entry.adapter_class()
        config = entry.resolved_config(args.profile, overrides)
    categories = load_dataset(args.dataset, args.dataset_root, args.categories)
    best, rows = choose_on_validation(
        cls,
        config,
        args.param,
        values,
        categories,
        source=args.source,
        metric=args.metric,
        seed=args.seed,
        progress=print,
        tie_break=args.tie_break,
    )
    df = pd.DataFrame(rows)
    df["value"] = [repr(v) for v in df["value"]]  # lists as labels
    cols = [c for c in ("image_auroc", "pixel_auroc", "au_spro_0.05") if c in df]
    table = df.pivot_table(index="value", columns="category", values=args.metric, sort=False)
    table["mean"] = table.mean(axis=1)
    print(f"\nvalidation {args.metric} ({args.method}, {args.profile} profile):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.tie_break in df and args.tie_break != args.metric:
        ties = df.pivot_table(index="value", columns="category", values=args.tie_break, sort=False)
        ties["mean"] = ties.mean(axis=1)
        print(f"\nvalidation {args.tie_break} (breaks ties):")
        print(ties.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\nchosen: {args.param} = {best!r}  (best mean validation {args.metric})")
    if args.output:
        df[["value", "category", *cols]].to_csv(args.output, index=False)
    return 0
