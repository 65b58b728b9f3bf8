"""``orchestrate datasets new``: a LOCO-format category from a part owner's folders of photos.

From a folder of good photos (and optionally one of defective photos) it lays out::

    <root>/<name>/train/good/000.png ...          good photos, the rest of the split
    <root>/<name>/validation/good/000.png ...     good photos, ``validation_share`` of them
    <root>/<name>/test/good/000.png ...           good photos, ``test_share`` of them
    <root>/<name>/test/{logical,structural}_anomalies/000.png ...   the defective photos
    <root>/<name>/ground_truth/<subset>/000/      one empty folder per defective photo
    <root>/<name>/defects_config.json             a template (one entry per anomaly kind)
    <root>/<name>/sources.csv                     original file -> new path, every photo

The good photos are split at random (seeded: the same files and seed give the same split);
test/good is needed because image AUROC ranks good test images against defective ones. A
defective photo's kind comes from the sub-folder it is in (``logical/`` or ``structural/``,
with or without the ``_anomalies`` suffix) or, for photos directly in the folder, from
``defect_kind``. Photos are hard-linked (copied where the file system cannot link, or with
``copy``) under LOCO's ``000.png``-style names, the original extension kept. Every photo is
decoded before anything is written; the category appears all at once (written next to its
place and renamed in), and an existing one is replaced only with ``force``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from orchestrator.data.loco import IMAGE_SUFFIXES
from orchestrator.errors import UserError

KINDS = ("structural", "logical")
SUBSET = {"structural": "structural_anomalies", "logical": "logical_anomalies"}
#: sub-folders of ``--defective`` naming the kind of the photos inside
KIND_FOLDERS = {
    "structural": "structural",
    "structural_anomalies": "structural",
    "logical": "logical",
    "logical_anomalies": "logical",
}
#: the defects_config.json template: one entry per kind, relative saturation 1.0 (a region
#: counts as found once all of it is covered, LOCO's default for most defects)
TEMPLATE = [
    {
        "defect_name": "structural_defect",
        "pixel_value": 1,
        "saturation_threshold": 1.0,
        "relative_saturation": True,
    },
    {
        "defect_name": "logical_defect",
        "pixel_value": 2,
        "saturation_threshold": 1.0,
        "relative_saturation": True,
    },
]
MAPPING = "sources.csv"
SUFFIXES = sorted(IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Placed:
    """One photo and its place in the category."""

    source: Path  # the photo as found
    origin: str  # "good" or "defective"
    original: str  # its path relative to --good / --defective
    dest: str  # its path in the category, e.g. "test/structural_anomalies/003.png"
    masks: str = ""  # the folder its masks go into (defective photos only)


@dataclass
class Plan:
    """Where every photo goes, and what was skipped (``(path, reason)``)."""

    name: str
    placed: list[Placed]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # (W, H) per photo

    def count(self, folder: str) -> int:
        return sum(Path(p.dest).parent.as_posix() == folder for p in self.placed)

    @property
    def to_annotate(self) -> list[Placed]:
        return [p for p in self.placed if p.masks]


def _photos(folder: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """Image files directly in ``folder``, sorted; everything else goes to ``skipped``."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            skipped.append((p, "a sub-folder (only the photos directly in the folder are read)"))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)
        else:
            skipped.append((p, "not an image the loaders read (" + ", ".join(SUFFIXES) + ")"))
    return out


def _defective(
    folder: Path, defect_kind: str, skipped: list[tuple[Path, str]]
) -> dict[str, list[Path]]:
    """The defective photos per kind: sub-folders named after a kind, loose photos
    ``defect_kind``; any other sub-folder is an error (its photos would be lost)."""
    by_kind: dict[str, list[Path]] = {k: [] for k in KINDS}
    subs = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subs if p.name.lower() not in KIND_FOLDERS]
    if unknown:
        raise UserError(
            f"--defective {folder}: sub-folder(s) {', '.join(unknown)} name no anomaly kind; "
            "put the photos into logical/ or structural/ (or directly into the folder, with "
            "--defect-kind)"
        )
    inner: list[tuple[Path, str]] = []
    by_kind[defect_kind] += _photos(folder, inner)
    skipped += [(p, why) for p, why in inner if not p.is_dir()]  # the kind folders are read
    for sub in subs:
        by_kind[KIND_FOLDERS[sub.name.lower()]] += _photos(sub, skipped)
    return by_kind


def check_name(name: str) -> None:
    """A category name is a plain folder name."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise UserError(f"category name {name!r} must be a plain folder name (e.g. flat_plate)")


def _check_share(option: str, value: float) -> None:
    if not 0 < value < 1:
        raise UserError(f"{option} must be a fraction in (0, 1), got {value}")


def split_good(
    n: int, validation_share: float, test_share: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """``(train, validation, test)`` indices of ``n`` good photos: a seeded permutation,
    at least one photo in each part, each part in ascending order."""
    _check_share("--validation-share", validation_share)
    _check_share("--test-share", test_share)
    n_val = max(1, round(validation_share * n))
    n_test = max(1, round(test_share * n))
    if n - n_val - n_test < 1:
        raise UserError(
            f"{n} good photo(s) are too few: at least 3 are needed (one each for train, "
            f"validation and test), and with --validation-share {validation_share} and "
            f"--test-share {test_share} {n_val} + {n_test} are held out; add photos or "
            "lower the shares"
        )
    order = np.random.default_rng(seed).permutation(n).tolist()
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    return sorted(train), sorted(val), sorted(test)


def _read_all(paths: list[Path], progress: bool) -> dict[Path, tuple[int, int]]:
    """Decode every photo; any unreadable one is a UserError listing them all."""
    sizes: dict[Path, tuple[int, int]] = {}
    bad: list[str] = []
    for p in tqdm(paths, desc="reading photos", unit="img", disable=not progress, leave=False):
        try:
            with Image.open(p) as im:
                im.load()
                sizes[p] = im.size
        except Exception as exc:  # noqa: BLE001 - any decoder error is the user's file
            bad.append(f"{p} ({type(exc).__name__}: {exc})")
    if bad:
        raise UserError(f"{len(bad)} unreadable image(s), nothing written:\n  " + "\n  ".join(bad))
    return sizes


def plan_category(
    name: str,
    good: Path,
    defective: Path | None = None,
    *,
    defect_kind: str = "structural",
    validation_share: float = 0.2,
    test_share: float = 0.2,
    seed: int = 0,
    progress: bool = False,
) -> Plan:
    """Where each photo goes; every photo is decoded first (unreadable: UserError)."""
    check_name(name)
    if defect_kind not in KINDS:
        raise UserError(f"--defect-kind must be one of {', '.join(KINDS)}, got {defect_kind!r}")
    for option, folder in (("--good", good), ("--defective", defective)):
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"{option} {folder}: no such folder")
    good, defective = Path(good), Path(defective) if defective is not None else None
    skipped: list[tuple[Path, str]] = []
    good_photos = _photos(good, skipped)
    if not good_photos:
        raise UserError(
            f"--good {good}: no images found (looked for {', '.join(SUFFIXES)} files directly "
            "in the folder)"
        )
    by_kind = _defective(defective, defect_kind, skipped) if defective else {}
    if defective is not None and not any(by_kind.values()):
        raise UserError(f"--defective {defective}: no images found")
    train, val, test = split_good(len(good_photos), validation_share, test_share, seed)
    placed: list[Placed] = []
    for split, idx in (("train", train), ("validation", val), ("test", test)):
        for j, i in enumerate(idx):
            p = good_photos[i]
            placed.append(Placed(p, "good", p.name, f"{split}/good/{j:03d}{p.suffix.lower()}"))
    for kind, photos in by_kind.items():
        subset = SUBSET[kind]
        for j, p in enumerate(photos):
            placed.append(
                Placed(
                    p,
                    "defective",
                    p.relative_to(defective).as_posix(),
                    f"test/{subset}/{j:03d}{p.suffix.lower()}",
                    f"ground_truth/{subset}/{j:03d}",
                )
            )
    sizes = _read_all([p.source for p in placed], progress)
    return Plan(name, placed, skipped, sizes)


def _place(src: Path, dst: Path, copy: bool) -> bool:
    """Hard-link ``src`` to ``dst`` (copy where that fails, or with ``copy``); True if linked."""
    if not copy:
        try:
            os.link(src, dst)
            return True
        except OSError:
            pass
    shutil.copyfile(src, dst)
    return False


def check_target(root: Path, name: str, force: bool, folders: list[Path]) -> Path:
    """``root/name``, if it may be written: absent or empty, or replaced with ``force`` (but
    never when one of the photo ``folders`` lies inside it)."""
    check_name(name)
    root = Path(root)
    target = root / name
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file, not a folder")
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file, not a category folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise UserError(
                f"{target} already exists; pick another name or --out, or --force to replace it"
            )
        for folder in folders:
            f = Path(folder).resolve()
            if f == target.resolve() or target.resolve() in f.parents:
                raise UserError(
                    f"--force would delete the photos in {folder}: it is inside {target}; "
                    "move them out first"
                )
    return target


def write_category(
    plan: Plan, root: Path, *, force: bool = False, copy: bool = False, progress: bool = False
) -> tuple[Path, int]:
    """Write the planned category to ``root/<name>``; returns its folder and how many photos
    were hard-linked (the rest were copied)."""
    root = Path(root)
    folders = sorted({p.source.parent for p in plan.placed})
    target = check_target(root, plan.name, force, folders)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".new-{plan.name}-", dir=root))
    linked = 0
    try:
        for sub in (
            "train/good",
            "validation/good",
            "test/good",
            *(f"test/{s}" for s in SUBSET.values()),
        ):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        for p in tqdm(plan.placed, desc="writing", unit="img", disable=not progress, leave=False):
            linked += _place(p.source, tmp / p.dest, copy)
            if p.masks:
                (tmp / p.masks).mkdir(parents=True, exist_ok=True)
        (tmp / "defects_config.json").write_text(json.dumps(TEMPLATE, indent=2) + "\n")
        with open(tmp / MAPPING, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["from", "original", "path", "masks"])
            for p in plan.placed:
                w.writerow([p.origin, p.original, p.dest, p.masks])
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, linked


def report(plan: Plan, target: Path, linked: int) -> str:
    """What ``datasets new`` prints: the layout, what was skipped, what to annotate next."""
    n = len(plan.placed)
    how = "hard-linked" if linked == n else "copied" if linked == 0 else f"{linked} hard-linked"
    n_good = sum(p.origin == "good" for p in plan.placed)
    lines = [
        f"wrote {target} (LOCO format): {n_good} good and {n - n_good} defective photo(s), {how}",
    ]
    for folder in (
        "train/good",
        "validation/good",
        "test/good",
        "test/logical_anomalies",
        "test/structural_anomalies",
    ):
        lines.append(f"  {folder:27s} {plan.count(folder):4d} image(s)")
    lines.append(f"  {MAPPING:27s} original photo -> new path (and mask folder)")
    lines.append(f"  {'defects_config.json':27s} a template to edit (see 2. below)")
    if plan.skipped:
        lines.append(f"skipped {len(plan.skipped)} file(s):")
        lines += [f"  {p}: {why}" for p, why in plan.skipped]
    sizes = Counter(plan.sizes.values())
    if len(sizes) > 1:
        (w, h), k = sizes.most_common(1)[0]
        lines.append(
            f"note: {n - k} photo(s) differ from the most common size {w}x{h}; a survey needs "
            "one size (datasets check lists them)"
        )
    todo = plan.to_annotate
    check = f"orchestrate datasets check {target}"
    survey = f"orchestrate survey --dataset {target.parent} --categories {plan.name}"
    if not todo:
        lines += [
            "",
            "Next: no defective photos, so a survey has nothing to rank good images against; add",
            "them (the same command with --defective DIR --force), then:",
            f"  {check}",
            f"  {survey}",
        ]
        return "\n".join(lines)
    lines += [
        "",
        f"Next: annotate the {len(todo)} defective image(s) ({MAPPING} says which photo each "
        "one is), in",
        f"{target}:",
        "  1. For each test/<kind>_anomalies/NNN image, save each defect region as its own "
        "mask PNG in",
        "     the empty folder ground_truth/<kind>_anomalies/NNN/ (000.png, 001.png, ...): "
        "the image's",
        "     size, 8-bit grey, 0 = background, the region's pixels = its defect type's "
        "pixel_value.",
        "  2. Edit defects_config.json: one entry per defect type (the template has "
        "structural_defect = 1",
        "     and logical_defect = 2): defect_name, pixel_value (1-255, the value its masks use),",
        "     saturation_threshold and relative_saturation (true: the share of the region a "
        "detection must",
        "     cover to count in full, 1.0 = all of it; false: an area in pixels, e.g. a "
        "missing part's).",
        f"  3. {check}   (lists the images still without masks)",
        f"  4. {survey}",
    ]
    return "\n".join(lines)
