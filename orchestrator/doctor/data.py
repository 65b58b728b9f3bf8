"""Checks of what a survey reads: the upstream checkouts, the backbone weights, the dataset."""

from __future__ import annotations

from pathlib import Path

from orchestrator.doctor import base
from orchestrator.doctor.base import (
    FAIL,
    OK,
    WARN,
    Result,
    _Context,
    _reason,
)
from orchestrator.errors import UserError

# --- upstream checkouts, weights -------------------------------------------------------------


def check_upstream(ctx: _Context) -> Result:
    from orchestrator.paths import vendor_dir
    from orchestrator.vendor import checkout_state_at

    reg = ctx.registry()
    entries = [e for e in reg.methods.values() if e.repo]
    if not entries:
        return Result("upstream", OK, "no method has an upstream repository")
    good, absent, bad = [], [], []
    for e in entries:
        st = checkout_state_at(e.checkout_dir, e.commit)  # as `orchestrate vendor status`
        if st.usable:
            good.append(e.name)
        elif not st.present and (not e.available or "native" in e.adapter_class().sources):
            absent.append(e.name)  # --source auto runs the native code
        elif not st.present:
            bad.append(f"{e.name}: no checkout, and no native source")
        else:
            bad.append(f"{e.name}: {st.problem}")
    where = f"in {vendor_dir()}"
    if bad:
        rest = f"; {len(good)} usable" + (f", {len(absent)} absent" if absent else "")
        return Result(
            "upstream", FAIL, "; ".join(bad) + rest + f" ({where}; `orchestrate vendor sync`)"
        )
    if absent:
        usable = f"{', '.join(good)} at pin, clean; " if good else ""
        return Result(
            "upstream",
            WARN,
            f"{usable}not checked out {where}: {', '.join(absent)} (the native sources are "
            "used; `orchestrate vendor sync` for the upstream code)",
        )
    return Result("upstream", OK, f"{len(good)}/{len(entries)} at their pins, clean ({where})")


def check_weights(ctx: _Context) -> Result:
    from types import SimpleNamespace

    from adapters.common.weights import checkpoints_dir, find_weights, weights_spec
    from orchestrator.cli.weights import backbone_uses

    reg = ctx.registry()
    defaults = {n: reg.methods[n] for n in reg.available()}  # what a plain survey runs
    uses = backbone_uses(SimpleNamespace(methods=defaults))
    if not uses:
        return Result("weights", OK, "the default methods use no pretrained backbone")

    def profiles(backbone: str) -> str:
        """``paper`` or ``paper/quick``, ``, upstream source`` when only that one uses it."""
        labels = uses[backbone]  # "method/profile", "method/profile (native)"
        names = "/".join(sorted({u.split("/", 1)[1].split(" ", 1)[0] for u in labels}))
        if all(u.endswith("(upstream)") for u in labels):
            names += ", upstream source"
        return names

    found, missing, unknown, corrupt = [], [], [], []
    for backbone in sorted(uses):
        try:
            weights_spec(backbone)
        except UserError as exc:  # e.g. a layout package of the upstream code not installed
            unknown.append(f"{backbone} ({profiles(backbone)}: {_reason(exc).split(' (')[0]})")
            continue
        try:
            where = find_weights(backbone)
        except UserError as exc:  # a file with the wrong hash
            corrupt.append(_reason(exc))
            continue
        (found if where else missing).append(f"{backbone} ({profiles(backbone)})")
    parts = []
    if found:
        parts.append("found " + ", ".join(found))
    if missing:
        parts.append("not found " + ", ".join(missing))
    if unknown:
        parts.append("unresolved " + ", ".join(unknown))
    if corrupt:
        return Result("weights", FAIL, "; ".join([*corrupt, *parts]))
    if missing or unknown:
        return Result(
            "weights",
            WARN,
            "; ".join(parts) + f" (hub cache {checkpoints_dir()}: torchvision downloads missing "
            "ones on first use where a model hub is reachable; offline, `orchestrate weights "
            "import`)",
        )
    return Result("weights", OK, "; ".join(parts))


# --- dataset -------------------------------------------------------------------------------


def check_dataset(ctx: _Context) -> Result:
    from orchestrator import preflight
    from orchestrator.data import load_dataset

    o = ctx.opts
    cats = load_dataset(o.dataset, o.dataset_root, o.categories)
    preflight.has_images(cats)
    roots = {c.root.parent for c in cats}
    root = next(iter(roots)) if len(roots) == 1 else cats[0].root.parent
    files = sum(
        len(c.train) + len(c.validation) + sum(1 + len(s.mask_paths) for s in c.test) for c in cats
    )
    names = ", ".join(c.name for c in cats)
    what = f"{root}: {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} ({names})"
    if o.full_dataset_check or files <= base.FULL_CHECK_MAX_FILES:  # read here: tests patch it
        from orchestrator.data.validate import validate

        problems = [p for c in cats for p in validate(c.root)]
        if problems:
            return Result(
                "dataset",
                FAIL,
                f"{what}: {len(problems)} problem(s), first: {problems[0]} (`orchestrate "
                "datasets check`)",
            )
        return Result("dataset", OK, f"{what}, {files} files, full check passed")
    opened, problems = _quick_check(cats)
    if problems:
        return Result(
            "dataset",
            FAIL,
            f"{what}: quick check found {len(problems)} problem(s), first: {problems[0]}",
        )
    return Result(
        "dataset",
        OK,
        f"{what}, {files} files: quick check passed (layout, every mask present, {opened} "
        "files opened); full check: `orchestrate datasets check` or --full-dataset-check",
    )


def _quick_check(cats) -> tuple[int, list[str]]:
    """Every anomalous test image's masks exist; one image per (split, folder) and its masks
    open. Returns (files opened, problems)."""
    from PIL import Image

    problems: list[str] = []
    opened = 0
    for cat in cats:
        seen: set[tuple[str, str]] = set()
        for s in [*cat.train, *cat.validation, *cat.test]:
            if s.is_anomalous and not s.mask_paths:
                problems.append(f"{s.image_path}: anomalous image without masks")
            for m in s.mask_paths:
                if not Path(m).is_file():
                    problems.append(f"{m}: mask missing")
            if (s.split, s.subset) in seen:
                continue
            seen.add((s.split, s.subset))
            for path in [s.image_path, *s.mask_paths]:
                try:
                    with Image.open(path) as im:
                        im.load()
                    opened += 1
                except Exception as exc:  # noqa: BLE001 - any decoder error is the file's
                    problems.append(f"{path}: unreadable image ({type(exc).__name__})")
    return opened, problems
