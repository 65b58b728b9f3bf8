"""Evaluate anomaly maps laid out as the official MVTec LOCO script expects.

Reads MAPS/<category>/test/<split>/<image_id>.tiff (or .tif / .npy): one real-valued map per
test image, at the image's size, higher = more anomalous. Computes image AUROC (logical /
structural / mean, image score = max of the map), pixel AUROC, AU-PRO and AU-sPRO at FPR
0.01 / 0.05 / 0.1 / 0.3 / 1.0 with exact curves (the official script samples ~1,000
thresholds), prints a table and writes metrics.json with the official script's structure.
Works for MVTec LOCO AD, custom LOCO-format and MVTec AD categories (no sPRO there).

``orchestrate evaluate``: a drop-in for MVTec LOCO's official evaluation script.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from orchestrator.cli.common import command
from orchestrator.errors import UserError

MAP_SUFFIXES = (".tiff", ".tif", ".npy")
SPLITS = (("logical", "logical_anomalies"), ("structural", "structural_anomalies"))


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "evaluate", __doc__)
    p.add_argument(
        "--dataset-root",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder holding the category folder",
    )
    p.add_argument(
        "--category", required=True, metavar="NAME", help="category (object) name, e.g. pushpins"
    )
    p.add_argument(
        "--maps", type=Path, required=True, metavar="MAPS_DIR", help="anomaly maps folder"
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="OUT",
        help="where to write metrics.json (default: the current folder)",
    )
    p.set_defaults(func=run)


def _npy_dtype(path: Path) -> np.dtype | None:
    """The dtype in a .npy file's header, without loading (or unpickling) the data."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(f)[2]
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(f)[2]
    except Exception:
        pass
    return None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read_tiff(path: Path) -> np.ndarray:
    """tifffile.imread, but a file with no readable image is an error, not an empty array;
    tifffile's logged warnings go into the message instead of onto stderr."""
    import tifffile

    log = logging.getLogger("tifffile")
    handler, propagate = _Collect(), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) == 0:
                why = "; ".join(handler.messages) or "no image in the file"
                raise ValueError(f"not a valid TIFF ({why})")
            arr = tif.asarray()
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    if arr.size == 0:
        raise ValueError("the TIFF holds no image data")
    return arr


def read_map(path: Path) -> np.ndarray:
    """One anomaly map from a .tiff/.tif (tifffile) or .npy file; UserError if unreadable."""
    try:
        if path.suffix == ".npy":
            return np.load(path)
        return _read_tiff(path)
    except Exception as exc:  # unreadable file: report, don't trace back
        dtype = _npy_dtype(path) if path.suffix == ".npy" else None
        if dtype is not None and dtype.hasobject:  # np.load refuses pickled objects
            raise UserError(
                f"not numeric: {path} has dtype {dtype} (Python objects); save a numeric array"
            ) from exc
        raise UserError(f"cannot read anomaly map {path}: {exc}") from exc


def check_map(path: Path, arr: np.ndarray, size: tuple[int, int]) -> str | None:
    """What is wrong with a map read from ``path`` (``size`` = height, width), or None.

    Booleans, integers and real floats are fine (stored as float32); strings, objects,
    records and complex numbers are not, nor NaN / infinity or finite values that float32
    cannot hold (they would turn into infinity when stored).
    """
    kind = arr.dtype.kind
    if kind == "c":
        return f"complex values: {path} has dtype {arr.dtype}; maps must be real-valued"
    if kind not in "biuf":
        return f"not numeric: {path} has dtype {arr.dtype}; save a numeric (float) array"
    if arr.shape != tuple(size):
        got = "x".join(str(d) for d in arr.shape[::-1]) if arr.ndim else "a scalar"
        return f"wrong size: {path} is {got}, image is {size[1]}x{size[0]}"
    if kind == "f" and not np.isfinite(arr).all():
        return f"not finite: {path} has NaN or infinite values"
    f32max = float(np.finfo(np.float32).max)
    if kind == "f" and arr.dtype.itemsize > 4 and arr.size and np.abs(arr).max() > f32max:
        return (
            f"out of range: {path} has values beyond float32 range "
            f"(largest magnitude {float(np.abs(arr).max()):.3g} > {f32max:.3g}); rescale the map"
        )
    return None


def load_maps(maps_dir: Path, category: str, test) -> np.ndarray:
    """Every test image's map, checked for presence, readability, type, size and values;
    UserError lists all problems."""
    from tqdm import tqdm

    base = maps_dir / category
    if not base.is_dir():
        raise UserError(f"{base}: no such folder (expected <MAPS>/<category>/test/<split>/...)")
    maps = np.empty((len(test), *test.eval_size), dtype=np.float32)
    problems = []
    for i, s in enumerate(tqdm(test, desc="reading maps", unit="map", leave=False)):
        cands = [base / "test" / s.subset / f"{s.image_id}{ext}" for ext in MAP_SUFFIXES]
        found = [c for c in cands if c.exists()]
        if not found:
            problems.append(f"missing: {cands[0]}")
            continue
        if len(found) > 1:
            names = " and ".join(str(c) for c in found)
            problems.append(
                f"ambiguous: {'both ' if len(found) == 2 else ''}{names} exist; keep one"
            )
            continue
        path = found[0]
        try:
            arr = np.squeeze(read_map(path))
        except UserError as exc:
            problems.append(str(exc))
            continue
        problem = check_map(path, arr, tuple(test.eval_size))
        if problem:
            problems.append(problem)
            continue
        maps[i] = arr
    if problems:
        head = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise UserError(
            f"{len(problems)} of {len(test)} anomaly maps missing or unusable "
            f"(width x height):\n  {head}{more}"
        )
    return maps


def official_structure(metrics: dict[str, float]) -> dict:
    """metrics.json as the official script writes it, plus our extra figures.

    ``localization.auc_spro.<logical_anomalies|structural_anomalies|mean>.<limit>`` and
    ``classification.auc_roc.<logical_anomalies|structural_anomalies|mean>``; the additional
    block holds pooled image AUROC, pixel AUROC, AU-PRO and F1-max.
    """
    loc: dict[str, dict[str, float]] = {}
    cls: dict[str, float] = {}
    for short, split in (*SPLITS, (None, "mean")):
        suffix = f"{short}_" if short else ""
        vals = {
            lim: metrics[f"au_spro_{suffix}{lim}"]
            for lim in ("0.01", "0.05", "0.1", "0.3", "1.0")
            if f"au_spro_{suffix}{lim}" in metrics
        }
        if vals:
            loc[split] = vals
        key = f"image_auroc_{short or 'mean'}"
        if key in metrics:
            cls[split] = metrics[key]
    extra = {
        k: metrics[k]
        for k in ("image_auroc", "pixel_auroc", "au_pro", "f1_max", "f1_threshold")
        if k in metrics
    }
    return {
        "localization": {"auc_spro": loc},
        "classification": {"auc_roc": cls},
        "additional": extra,
    }


def format_table(metrics: dict[str, float]) -> str:
    """The metrics as a text table: one row per split, AUROC and AU-sPRO per FPR limit."""
    lims = ("0.01", "0.05", "0.1", "0.3", "1.0")
    head = f"{'split':12s} {'img AUROC':>9s} " + " ".join(f"{'sPRO@' + x:>9s}" for x in lims)
    lines = [head, "-" * len(head)]

    def cell(key: str) -> str:
        return f"{metrics[key]:9.4f}" if key in metrics else f"{'-':>9s}"

    for short, _ in (*SPLITS, ("mean", "mean")):
        spro = "" if short == "mean" else f"{short}_"
        row = f"{short:12s} {cell(f'image_auroc_{short}')} "
        row += " ".join(cell(f"au_spro_{spro}{x}") for x in lims)
        lines.append(row)
    for key, name in (
        ("image_auroc", "image AUROC (pooled)"),
        ("f1_max", "image F1-max"),
        ("pixel_auroc", "pixel AUROC"),
        ("au_pro", "AU-PRO (FPR 0.3)"),
    ):
        if key in metrics:
            lines.append(f"{name:22s} {metrics[key]:.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from orchestrator.data import load_category
    from orchestrator.metrics import evaluate_arrays

    cat = load_category(args.dataset_root / args.category)
    test = cat.split("test")
    if len(test) == 0:
        raise UserError(f"{args.dataset_root / args.category}: no test images")
    maps = load_maps(args.maps, args.category, test)
    scores = maps.reshape(len(maps), -1).max(axis=1)  # image score = max of the map (official)
    regions = test.load_regions() if test.defects else None
    metrics = evaluate_arrays(scores, maps, test.labels, test.load_masks(), regions)
    print(f"{cat.name}: {len(test)} test images, maps {test.eval_size[1]}x{test.eval_size[0]}")
    print(format_table(metrics))
    out = args.output_dir or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(official_structure(metrics), indent=2))
    print(f"wrote {out / 'metrics.json'}")
    return 0
