"""Image-level metrics: AUROC (pooled and per anomaly type), F1-max."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score


def image_auroc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve of image scores (higher = more anomalous); ties count 1/2."""
    return float(roc_auc_score(np.asarray(anomalous, dtype=bool), np.asarray(scores, float)))


def image_auroc_by_type(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC as MVTec LOCO reports it.

    ``image_auroc_logical``: logical anomalies vs all good images; ``image_auroc_structural``
    likewise; ``image_auroc_mean``: the average of the two (the LOCO headline);
    ``image_auroc``: all anomalous images pooled vs good (labelled "pooled" in reports).
    Keys for anomaly types absent from ``labels`` are left out.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    good = labels == "good"
    out: dict[str, float] = {}
    if good.any() and (~good).any():
        out["image_auroc"] = image_auroc(scores, ~good)
    for kind in ("logical", "structural"):
        sel = good | (labels == kind)
        if (labels == kind).any() and good.any():
            out[f"image_auroc_{kind}"] = image_auroc(scores[sel], labels[sel] == kind)
    if "image_auroc_logical" in out and "image_auroc_structural" in out:
        out["image_auroc_mean"] = (out["image_auroc_logical"] + out["image_auroc_structural"]) / 2
    return out


def f1_max(scores: np.ndarray, anomalous: np.ndarray) -> tuple[float, float]:
    """Best F1 over all thresholds and the threshold reaching it (predict score >= thr)."""
    precision, recall, thresholds = precision_recall_curve(
        np.asarray(anomalous, dtype=bool), np.asarray(scores, float)
    )
    p, r = precision[:-1], recall[:-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])
