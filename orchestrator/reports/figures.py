"""Figures: a methods x categories heat-map, anomaly-map overlays, an ROC curve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap_figure(table: pd.DataFrame, metric: str):
    """A heat-map of a summary table (failed / missing cells blank)."""
    plt = _plt()
    vals = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    labels = [f"{m} ({p})" if p else m for m, p in table.index]
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * table.shape[1], 1.0 + 0.5 * table.shape[0]))
    im = ax.imshow(np.ma.masked_invalid(vals), cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), labels)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            raw = table.iat[i, j]
            text = f"{vals[i, j]:.3f}" if np.isfinite(vals[i, j]) else str(raw or "-")
            ax.text(j, i, text, ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(metric)
    return fig


def overlay_grid(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    masks: np.ndarray | None = None,
    ncols: int = 4,
):
    """Images ``[N, H, W, 3]`` with their anomaly maps ``[N, H, W]`` overlaid (one colour scale
    for all, so maps are comparable), ground-truth outlines when ``masks`` are given."""
    plt = _plt()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.6 * nrows), squeeze=False)
    lo, hi = (float(np.min(maps)), float(np.max(maps))) if n else (0.0, 1.0)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(images[i])
        ax.imshow(maps[i], cmap="jet", alpha=0.45, vmin=lo, vmax=hi if hi > lo else lo + 1)
        if masks is not None and masks[i].any():
            ax.contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(titles[i], fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.05, hspace=0.2)
    return fig


def roc_figure(
    scores: np.ndarray, anomalous: np.ndarray, labels: np.ndarray | None = None, title: str = ""
):
    """ROC curve of image scores (all anomalies; per label type too when ``labels`` given)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    groups = [("all", np.ones(len(scores), bool))]
    if labels is not None:
        for t in ("logical", "structural"):
            if (labels == t).any():
                groups.append((t, (labels == t) | (labels == "good")))
    for name, sel in groups:
        y = anomalous[sel]
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, scores[sel])
        ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, scores[sel]):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "image-level ROC")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
