"""The background-removal ablation's reports: the side-by-side table (per method, category
and metric: the original arm, the masked arm, Δ = masked − original; means over seeds) as
CSV and Markdown, and the overlay figure of the same test images in both arms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ARMS = ("original", "masked")
#: metrics the table compares, in this order, when the trials logged them
ABLATION_METRICS = (
    "image_auroc_mean",
    "image_auroc",
    "image_auroc_logical",
    "image_auroc_structural",
    "pixel_auroc",
    "au_pro",
    "au_spro_0.05",
    "f1_max",
)
FAILED = "FAILED"


def arm(row: Mapping[str, Any]) -> str:
    """``original`` for a trial on the images as they are, else ``masked``."""
    return "original" if str(row.get("preprocess") or "none") == "none" else "masked"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def ablation_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (method, category, metric): ``original`` and ``masked`` (the mean over
    the arm's finished seeds; ``FAILED`` when they all failed; None when absent),
    ``delta`` = masked − original, and ``n_original`` / ``n_masked`` (seeds)."""
    values: dict[tuple[str, str, str, str], list[float]] = {}
    failed: set[tuple[str, str, str]] = set()
    cells: list[tuple[str, str]] = []
    for r in rows:
        m, c, a = str(r["method"]), str(r["category"]), arm(r)
        if (m, c) not in cells:
            cells.append((m, c))
        if r.get("status", "done") != "done":
            failed.add((a, m, c))
            continue
        for metric in ABLATION_METRICS:
            v = _num(r.get(metric))
            if v is not None:
                values.setdefault((a, m, c, metric), []).append(v)
    metrics = [k for k in ABLATION_METRICS if any(key[3] == k for key in values)]
    if "image_auroc_mean" in metrics and "image_auroc" in metrics:
        metrics.remove("image_auroc")  # the mean of logical/structural says it for LOCO
    out = []
    for m, c in sorted(cells):
        for metric in metrics:
            entry: dict[str, Any] = {"method": m, "category": c, "metric": metric}
            for a in ARMS:
                vals = values.get((a, m, c, metric), [])
                entry[a] = (
                    sum(vals) / len(vals) if vals else (FAILED if (a, m, c) in failed else None)
                )
                entry[f"n_{a}"] = len(vals)
            o, k = entry["original"], entry["masked"]
            both = isinstance(o, float) and isinstance(k, float)
            entry["delta"] = k - o if both else None
            out.append(entry)
    cols = ["method", "category", "metric", *ARMS, "delta", "n_original", "n_masked"]
    return pd.DataFrame(out, columns=cols)


def _fmt(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:+.3f}" if signed else f"{v:.3f}"
    return str(v)


def to_markdown(table: pd.DataFrame, masked_label: str) -> str:
    """The table in Markdown under a title naming both arms."""
    lines = [
        f"**Background-removal ablation**: original vs {masked_label} "
        "(Δ = masked − original; mean over seeds)",
        "",
        "| Method | Category | Metric | original | masked | Δ |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| {r.method} | {r.category} | {r.metric} | {_fmt(r.original)} | "
            f"{_fmt(r.masked)} | {_fmt(r.delta, signed=True)} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(rows: Sequence[Mapping[str, Any]], out_dir: Path, masked_label: str) -> str:
    """``ablation.csv`` and ``ablation.md`` into ``out_dir``; returns the Markdown."""
    table = ablation_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "ablation.csv", index=False)
    text = to_markdown(table, masked_label)
    (out_dir / "ablation.md").write_text(text)
    return text


# --------------------------------------------------------------------------- figures
def _resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from orchestrator.data.types import resize_mask

    return resize_mask(mask, size)


def ablation_figure(
    title: str,
    original: Sequence,
    masked: Sequence,
    maps: Mapping[str, Mapping[str, np.ndarray]],
    kept: Sequence[np.ndarray | None],
    subtitles: Sequence[str],
):
    """One row per test image: the image with its ground-truth outline (white), the original
    arm's map over it, the masked image with the region kept (cyan), the masked arm's map over
    it; both arms' maps on one colour scale. ``original`` / ``masked``: the image's sample in
    each arm; ``maps``: arm -> sample key -> map (all at one size)."""
    from orchestrator.reports.figures import _plt

    plt = _plt()
    keys = [s.key for s in original]
    every = [maps[a][k] for a in ARMS for k in keys]
    lo, hi = float(min(np.min(m) for m in every)), float(max(np.max(m) for m in every))
    hi = hi if hi > lo else lo + 1.0
    n = len(keys)
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.5 * n + 0.6), squeeze=False)
    heads = ("image (ground truth)", "original: map", "masked image (kept region)", "masked: map")
    for i, (so, sm) in enumerate(zip(original, masked, strict=True)):
        size = maps["original"][so.key].shape
        img, img_m = so.load_image(size), sm.load_image(size)
        gt = so.load_mask(size)
        panels = (
            (img, None),
            (img, maps["original"][so.key]),
            (img_m, None),
            (img_m, maps["masked"][so.key]),
        )
        for j, (picture, amap) in enumerate(panels):
            ax = axes[i, j]
            ax.axis("off")
            ax.imshow(picture)
            if amap is not None:
                ax.imshow(amap, cmap="jet", alpha=0.45, vmin=lo, vmax=hi)
            if gt.any() and j != 2:
                ax.contour(gt, levels=[0.5], colors="white", linewidths=0.8)
            if j == 2 and kept[i] is not None:
                ax.contour(
                    _resized_mask(kept[i], size), levels=[0.5], colors="cyan", linewidths=0.8
                )
            ax.set_title(f"{heads[j]}\n{subtitles[i]}" if i == 0 else subtitles[i], fontsize=8)
    height = fig.get_figheight()
    fig.suptitle(
        f"{title} (both maps on one colour scale: {lo:.3g} .. {hi:.3g})",
        fontsize=10,
        y=1 - 0.12 / height,
    )
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / height, wspace=0.05, hspace=0.25
    )
    return fig
