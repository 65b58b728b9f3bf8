"""Dataset names -> loaded categories: the embedded synthetic set, MVTec LOCO AD, MVTec AD,
or any folder of LOCO-format categories (e.g. the thesis' flat connector)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.data.loco import load_category
from orchestrator.data.types import Category
from orchestrator.errors import UserError

LOCO_CATEGORIES = (
    "breakfast_box",
    "juice_bottle",
    "pushpins",
    "screw_bag",
    "splicing_connectors",
)
MVTEC_AD_CATEGORIES = (
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
)
DATASETS = ("synthetic", "loco", "mvtec", "custom")


def data_root() -> Path:
    """Where downloaded datasets live: ``$ORCHESTRATOR_DATA`` or ``./data``."""
    return Path(os.environ.get("ORCHESTRATOR_DATA", "data"))


def default_root(dataset: str) -> Path:
    return (
        data_root()
        / {
            "loco": "mvtec_loco_anomaly_detection",
            "mvtec": "mvtec_anomaly_detection",
        }[dataset]
    )


LOCO_HOWTO = """MVTec LOCO AD was not found at {root}.
It cannot be downloaded automatically (its licence, CC BY-NC-SA 4.0, asks you to accept it):
  1. download mvtec_loco_anomaly_detection.tar.xz from
     https://www.mvtec.com/company/research/datasets/mvtec-loco
  2. unpack it so that {root}/breakfast_box/train/good/000.png exists:
       mkdir -p {parent} && tar -xJf mvtec_loco_anomaly_detection.tar.xz -C {parent}
  3. or pass --dataset-root DIR (or set ORCHESTRATOR_DATA to the folder holding it).
Check the folder with: orchestrate datasets check {root}"""

MVTEC_HOWTO = """MVTec AD was not found at {root}.
Download mvtec_anomaly_detection.tar.xz from https://www.mvtec.com/company/research/datasets/mvtec-ad
(CC BY-NC-SA 4.0), unpack it so that {root}/bottle/train/good/000.png exists, or pass
--dataset-root DIR. Check the folder with: orchestrate datasets check {root}"""


def category_dirs(root: Path) -> list[Path]:
    """Category folders under a dataset root (those with a train/ folder), sorted."""
    if (root / "train").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "train").is_dir())


def load_dataset(
    dataset: str = "synthetic",
    root: str | Path | None = None,
    categories: list[str] | None = None,
) -> list[Category]:
    """Load the categories of a dataset.

    ``dataset``: ``synthetic`` (generated into the cache on first use), ``loco``, ``mvtec``,
    ``custom`` (needs ``root``), or a path to a folder of categories. ``categories`` selects by
    name (default: all found).
    """
    if dataset not in DATASETS:
        root, dataset = Path(dataset), "custom"
    if dataset == "synthetic" and root is None:
        from orchestrator.data.synthetic import ensure_synthetic

        root = ensure_synthetic()
    if root is None:
        if dataset == "custom":
            raise UserError("--dataset custom needs --dataset-root DIR")
        root = default_root(dataset)
        if not root.is_dir():
            howto = LOCO_HOWTO if dataset == "loco" else MVTEC_HOWTO
            raise UserError(howto.format(root=root, parent=root.parent))
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist")
    found = {p.name: p for p in category_dirs(root)}
    if not found:
        raise UserError(f"{root}: no category folders (with a train/ folder) found")
    names = list(categories) if categories else sorted(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise UserError(
            f"{root}: unknown categories {', '.join(missing)} (found: {', '.join(sorted(found))})"
        )
    fmt = "mvtec" if dataset == "mvtec" else "auto"
    return [load_category(found[n], fmt) for n in names]
