"""``orchestrate datasets``: check a dataset folder, generate the synthetic set, lay out a new
category from photos, list categories."""

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

    n = dsub.add_parser(
        "new",
        help="lay out a LOCO-format category from folders of photos",
        description="Lay out ROOT/NAME in LOCO format from a folder of good photos (split "
        "into train/good, validation/good and test/good at random, seeded) and one of "
        "defective photos (test/<kind>_anomalies, an empty ground_truth folder each, for "
        "their masks), with a defects_config.json template and sources.csv (original "
        "photo -> new path). Prints what to annotate next.",
    )
    n.add_argument("name", metavar="NAME", help="the category's name (its folder under --out)")
    n.add_argument(
        "--good", type=Path, required=True, metavar="DIR", help="folder of photos of good parts"
    )
    n.add_argument(
        "--defective",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of photos of defective parts; photos in its logical/ or structural/ "
        "sub-folder are of that kind, photos directly in it of --defect-kind",
    )
    n.add_argument(
        "--defect-kind",
        choices=["structural", "logical"],
        default="structural",
        help="the kind of the photos directly in --defective (default structural: damage "
        "such as a scratch or dent; logical: a wrong arrangement, a missing or extra part)",
    )
    n.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="ROOT",
        help="folder of categories: the category goes to ROOT/NAME",
    )
    n.add_argument(
        "--validation-share",
        type=float,
        metavar="F",
        default=0.2,
        help="share of the good photos for validation/good (default 0.2, at least one)",
    )
    n.add_argument(
        "--test-share",
        type=float,
        metavar="F",
        default=0.2,
        help="share of the good photos for test/good (default 0.2, at least one; image "
        "AUROC ranks them against the defective ones)",
    )
    n.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the split (same seed, same split)"
    )
    n.add_argument(
        "--copy", action="store_true", help="copy the photos (default: hard links where possible)"
    )
    n.add_argument("--force", action="store_true", help="replace an existing ROOT/NAME")
    n.set_defaults(func=_new)

    ls = dsub.add_parser("list", help="list the categories of a dataset and their split sizes")
    ls.add_argument("--dataset", default="synthetic", help="synthetic|loco|mvtec|custom")
    ls.add_argument("--dataset-root", type=Path, default=None, help="folder of categories")
    ls.add_argument("--categories", default=None, help="comma-separated category names")
    ls.set_defaults(func=_list)


def _check(args: argparse.Namespace) -> int:
    from orchestrator.data.validate import NO_MASKS, validate

    problems = validate(args.path, progress=sys.stderr.isatty())
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) found in {args.path}", file=sys.stderr)
        unmasked = sum(p.kind == NO_MASKS for p in problems)
        if unmasked:
            print(MASK_HINT.format(n=unmasked), file=sys.stderr)
        return 2
    print(f"{args.path}: OK")
    return 0


MASK_HINT = "\n".join(
    [
        "{n} defective image(s) have no masks yet. A mask is a PNG of its image's size, 8-bit",
        "grey: 0 = background, the region's pixels = its defect's pixel_value in",
        "defects_config.json (LOCO; MVTec AD: one <id>_mask.png per image, 255 = defect).",
        "A survey refuses the category until every defective image has its masks (before",
        "the first mask is drawn, survey --no-validate gives image metrics only).",
    ]
)


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


def _new(args: argparse.Namespace) -> int:
    from orchestrator.data.new_category import check_target, plan_category, report, write_category

    progress = sys.stderr.isatty()
    folders = [f for f in (args.good, args.defective) if f is not None]
    check_target(args.out, args.name, args.force, folders)  # before reading any photo
    plan = plan_category(
        args.name,
        args.good,
        args.defective,
        defect_kind=args.defect_kind,
        validation_share=args.validation_share,
        test_share=args.test_share,
        seed=args.seed,
        progress=progress,
    )
    target, linked = write_category(
        plan, args.out, force=args.force, copy=args.copy, progress=progress
    )
    print(report(plan, target, linked))
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
