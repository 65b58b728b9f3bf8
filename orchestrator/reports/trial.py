"""The files every trial logs next to its metrics: per-image scores and the figures people
look at first (anomaly-map overlays of a few images per label, ROC, reliability)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def sample_indices(labels: Sequence[str], per_label: int = 2) -> list[int]:
    """A few images of each label, spread over the set (the overlay grid's rows)."""
    picked: list[int] = []
    for lab in ("good", "logical", "structural", "anomaly"):
        idx = [i for i, x in enumerate(labels) if x == lab]
        if idx:
            step = max(1, len(idx) // per_label)
            picked += idx[::step][:per_label]
    return picked


def defect_type(sample, defects) -> str:
    """The defect names of a test image's regions (MVTec LOCO: from defects_config.json,
    e.g. ``missing_pushpin``; several joined by ``+``), else its folder (``good``, an MVTec
    AD defect type)."""
    if not sample.mask_paths:
        return sample.subset
    names = {r.defect_name for r in sample.load_regions(defects)} - {"anomaly"}
    return "+".join(sorted(names)) or sample.subset


def decision_metrics(scores: np.ndarray, anomalous: np.ndarray, thresholds) -> dict[str, float]:
    """How the validation-chosen image threshold decides on the test images: precision,
    recall and F1 there (the threshold itself logged beside them)."""
    pred = np.asarray(scores) >= thresholds.image
    y = np.asarray(anomalous, dtype=bool)
    tp = float(np.sum(pred & y))
    precision = tp / max(1.0, float(pred.sum()))
    recall = tp / max(1.0, float(y.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "image_threshold": float(thresholds.image),
        "pixel_threshold": float(thresholds.pixel),
        "precision_at_threshold": precision,
        "recall_at_threshold": recall,
        "f1_at_threshold": f1,
    }


def write_trial_artifacts(out: Path, test, preds, probs, title: str, thresholds=None) -> None:
    """scores.csv (per test image: key, label, defect type, score, probability and, given the
    validation-chosen ``thresholds``, the predicted label), overlays.png, roc.png,
    reliability.png for one trial into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from orchestrator.reports.figures import overlay_grid, roc_figure

    labels = test.labels
    table = pd.DataFrame(
        {
            "key": [s.key for s in test],
            "label": labels,
            "defect_type": [defect_type(s, test.defects) for s in test],
            "score": preds.image_scores,
            "probability": probs if probs is not None else np.nan,
        }
    )
    if thresholds is not None:
        flagged = np.asarray(preds.image_scores) >= thresholds.image
        table["predicted"] = np.where(flagged, "anomalous", "good")
    table.to_csv(out / "scores.csv", index=False)
    idx = sample_indices(list(labels))
    sub = test.subset(idx)
    fig = overlay_grid(
        sub.load_images(),
        preds.anomaly_maps[idx],
        [f"{labels[i]} {test[i].image_id}: {preds.image_scores[i]:.3g}" for i in idx],
        masks=sub.load_masks(),
    )
    fig.savefig(out / "overlays.png", dpi=90)
    plt.close(fig)
    write_overlay_maps(out / OVERLAY_MAPS, [test[i].key for i in idx], preds.anomaly_maps[idx])
    fig = roc_figure(preds.image_scores, test.is_anomalous, labels, title=title)
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    if probs is not None:
        reliability_png(
            out / "reliability.png", probs, test.is_anomalous, f"{title} (bounded sigmoid)"
        )


#: the overlay grid's maps, kept for figures made later (orchestrate ablation)
OVERLAY_MAPS = "overlay_maps.npz"
#: their longest side at most this many pixels (float16): a few kB per trial
OVERLAY_MAP_SIDE = 256


def write_overlay_maps(path: Path, keys: Sequence[str], maps: np.ndarray) -> None:
    """The maps of the overlay grid's images (``keys``: their sample keys), shrunk to at most
    :data:`OVERLAY_MAP_SIDE` pixels a side, as ``keys`` / ``maps`` (float16, divided by
    ``scale``) in a compressed npz."""
    import torch
    import torch.nn.functional as F

    maps = np.asarray(maps, dtype=np.float32)
    if maps.size and max(maps.shape[1:]) > OVERLAY_MAP_SIDE:
        scale = OVERLAY_MAP_SIDE / max(maps.shape[1:])
        size = tuple(max(1, round(d * scale)) for d in maps.shape[1:])
        t = torch.from_numpy(np.ascontiguousarray(maps))[:, None]
        maps = F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()
    scale = float(np.max(np.abs(maps))) if maps.size else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0  # float16 holds values <= 65504
    np.savez_compressed(
        path, keys=np.array(list(keys)), maps=(maps / scale).astype(np.float16), scale=scale
    )


def read_overlay_maps(path: Path) -> dict[str, np.ndarray]:
    """sample key -> map (float32) of a trial's :data:`OVERLAY_MAPS`."""
    with np.load(path) as data:
        scale = float(data["scale"])
        return {
            str(k): m.astype(np.float32) * scale
            for k, m in zip(data["keys"], data["maps"], strict=True)
        }


def reliability_png(path: Path, probs: np.ndarray, y: np.ndarray, title: str) -> None:
    """A reliability diagram of ``probs`` (fitted on validation) against the labels ``y``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrator.calibration import reliability_figure

    fig = reliability_figure(probs, y, title=title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
