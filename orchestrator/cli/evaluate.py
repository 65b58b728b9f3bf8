"""``orchestrate evaluate``: a drop-in for MVTec LOCO's official evaluation script."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from orchestrator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate anomaly maps laid out as the official MVTec LOCO script expects",
        description=(
            "Reads <MAPS>/<category>/test/<split>/<image_id>.tiff (or .npy), real-valued maps at "
            "the image's size, and computes image AUROC (logical / structural / mean), pixel "
            "AUROC, AU-PRO and AU-sPRO (exact curves) in seconds. Writes metrics.json with the "
            "official script's structure."
        ),
    )
    p.add_argument("--dataset-root", type=Path, required=True, help="folder holding the category")
    p.add_argument("--category", required=True)
    p.add_argument("--maps", type=Path, required=True, help="anomaly maps folder (MAPS_DIR)")
    p.add_argument("--output-dir", type=Path, default=None, help="where to write metrics.json")
    p.set_defaults(func=run)


def read_map(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    import tifffile

    return tifffile.imread(path)


def load_maps(maps_dir: Path, category, test) -> np.ndarray:
    """Every test image's map, checked for presence and size; UserError lists all problems."""
    base = maps_dir / category
    maps = np.empty((len(test), *test.eval_size), dtype=np.float32)
    problems = []
    for i, s in enumerate(test):
        cands = [
            base / "test" / s.subset / f"{s.image_id}{ext}" for ext in (".tiff", ".tif", ".npy")
        ]
        path = next((c for c in cands if c.exists()), None)
        if path is None:
            problems.append(f"missing: {cands[0]}")
            continue
        arr = np.squeeze(read_map(path))
        if arr.shape != tuple(test.eval_size):
            problems.append(
                f"wrong size: {path} is {arr.shape[1]}x{arr.shape[0]}, "
                f"image is {test.eval_size[1]}x{test.eval_size[0]}"
            )
            continue
        maps[i] = arr
    if problems:
        head = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise UserError(f"{len(problems)} anomaly map problem(s):\n  {head}{more}")
    return maps


def official_structure(metrics: dict[str, float]) -> dict:
    """metrics.json as the official script writes it (localization / classification)."""
    loc: dict[str, dict[str, float]] = {"auc_spro": {}}
    for split in ("logical_anomalies", "structural_anomalies", "mean"):
        short = split.split("_")[0] if split != "mean" else None
        vals = {}
        for lim in ("0.01", "0.05", "0.1", "0.3", "1.0"):
            key = f"au_spro_{short}_{lim}" if short else f"au_spro_{lim}"
            if key in metrics:
                vals[lim] = metrics[key]
        if vals:
            loc["auc_spro"][split] = vals
    cls = {"auc_roc": {}}
    for split, key in (
        ("logical_anomalies", "image_auroc_logical"),
        ("structural_anomalies", "image_auroc_structural"),
        ("mean", "image_auroc_mean"),
    ):
        if key in metrics:
            cls["auc_roc"][split] = metrics[key]
    extra = {
        k: metrics[k] for k in ("image_auroc", "pixel_auroc", "au_pro", "f1_max") if k in metrics
    }
    return {"localization": loc, "classification": cls, "additional": extra}


def run(args: argparse.Namespace) -> int:
    from orchestrator.data import load_category
    from orchestrator.metrics import evaluate_arrays

    cat = load_category(args.dataset_root / args.category)
    test = cat.split("test")
    maps = load_maps(args.maps, args.category, test)
    scores = maps.reshape(len(maps), -1).max(axis=1)  # image score = max of the map
    metrics = evaluate_arrays(scores, maps, test.labels, test.load_masks(), test.load_regions())
    print(f"{'metric':32s} value")
    for k in sorted(metrics):
        print(f"{k:32s} {metrics[k]:.4f}")
    out = args.output_dir or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(official_structure(metrics), indent=2))
    print(f"wrote {out / 'metrics.json'}")
    return 0
