"""``orchestrate datasets``: check a dataset folder, generate the synthetic set, list categories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="check dataset folders, generate the synthetic dataset")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    c = dsub.add_parser(
        "check", help="validate a LOCO-format or MVTec AD folder (category or root)"
    )
    c.add_argument("path", type=Path, help="a category folder or a folder of categories")
    c.set_defaults(func=_check)

    s = dsub.add_parser("synth", help="write the procedural LOCO-format categories")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument(
        "--categories",
        default="flat_connector,pushpins",
        help="comma-separated (default: flat_connector,pushpins)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that is not empty (the generated categories' folders are "
        "replaced; nothing else is touched)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    s.add_argument("--size", default="192x256", help="image size HxW (default 192x256)")
    s.add_argument("--train", type=int, default=None, help="train images (default 40)")
    s.add_argument(
        "--test", type=int, default=None, help="test images per subset good/logical/structural (20)"
    )
    s.set_defaults(func=_synth)

    ls = dsub.add_parser("list", help="list the categories of a dataset and their split sizes")
    ls.add_argument("--dataset", default="synthetic", help="synthetic|loco|mvtec|custom")
    ls.add_argument("--dataset-root", type=Path, default=None, help="folder of categories")
    ls.add_argument("--categories", default=None, help="comma-separated category names")
    ls.set_defaults(func=_list)


def _check(args: argparse.Namespace) -> int:
    from orchestrator.data.validate import validate

    problems = validate(args.path, progress=sys.stderr.isatty())
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.path}", file=sys.stderr)
        return 2
    print(f"{args.path}: OK")
    return 0


def parse_size(text: str) -> tuple[int, int]:
    from orchestrator.errors import UserError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise UserError(f"--size must look like 192x256 (HxW), got {text!r}") from exc
    if h < 64 or w < 64:
        raise UserError("--size: images must be at least 64x64")
    return h, w


def _synth(args: argparse.Namespace) -> int:
    from orchestrator.data.synthetic import GENERATORS, generate
    from orchestrator.data.validate import validate
    from orchestrator.errors import UserError

    cats = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = [c for c in cats if c not in GENERATORS]
    if unknown:
        raise UserError(f"unknown categories {unknown}; available: {', '.join(GENERATORS)}")
    if args.train is not None and args.train < 1 or args.test is not None and args.test < 1:
        raise UserError("--train and --test need at least 1 image")
    size = parse_size(args.size)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not args.force:
            raise UserError(
                f"--out {out} is not empty: files there would be overwritten and stale ones "
                "kept; pick an empty folder, or --force to replace the generated categories"
            )
        import shutil

        for c in cats:
            if (out / c).is_dir():
                shutil.rmtree(out / c)
            elif (out / c).exists():
                (out / c).unlink()
    paths = generate(
        out,
        cats,
        seed=args.seed,
        size=size,
        n_train=args.train,
        n_good=args.test,
        n_logical=args.test,
        n_structural=args.test,
        progress=sys.stderr.isatty(),
    )
    for path in paths:
        problems = validate(path)
        status = "OK" if not problems else f"{len(problems)} problems"
        print(f"wrote {path} ({status})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from orchestrator.data import fingerprint, load_dataset

    names = [c.strip() for c in args.categories.split(",")] if args.categories else None
    for cat in load_dataset(args.dataset, args.dataset_root, names):
        counts = {
            lab: sum(s.label == lab for s in cat.test)
            for lab in ("good", "logical", "structural", "anomaly")
        }
        test = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        print(
            f"{cat.name:24s} {cat.format:6s} train {len(cat.train):4d}  validation "
            f"{len(cat.validation):3d}  test: {test}  fingerprint {fingerprint(cat)}"
        )
    return 0
