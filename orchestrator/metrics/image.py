"""Image-level metrics: AUROC (pooled and per anomaly type, as MVTec LOCO reports), F1-max."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score


def image_auroc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve of image scores (higher = more anomalous).

    Exact Mann-Whitney form: P(s_anomalous > s_good) + 0.5 * P(tie), scikit-learn's
    ``roc_auc_score``.
    """
    return float(roc_auc_score(np.asarray(anomalous, dtype=bool), np.asarray(scores, float)))


def image_auroc_by_type(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Image AUROC as MVTec LOCO's evaluation (v2.0) reports it, plus the pooled one.

    ``image_auroc_logical``: logical anomalies vs all good test images;
    ``image_auroc_structural`` likewise; ``image_auroc_mean``: the average of the two (the
    LOCO headline; with only one type present, that type's AUROC); ``image_auroc``: all
    anomalous images pooled vs good (MVTec AD's definition; labelled "pooled" in reports).
    The official script's image score is the maximum of the anomaly map; callers pass the
    method's own image score where it has one. Keys for absent types are left out.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    good = labels == "good"
    out: dict[str, float] = {}
    if good.any() and (~good).any():
        out["image_auroc"] = image_auroc(scores, ~good)
    per_type = []
    for kind in ("logical", "structural"):
        sel = good | (labels == kind)
        if (labels == kind).any() and good.any():
            out[f"image_auroc_{kind}"] = image_auroc(scores[sel], labels[sel] == kind)
            per_type.append(out[f"image_auroc_{kind}"])
    if per_type:
        out["image_auroc_mean"] = float(np.mean(per_type))
    return out


def f1_max(scores: np.ndarray, anomalous: np.ndarray) -> tuple[float, float]:
    """Best F1 over all thresholds and the threshold reaching it.

    F1 = 2 * precision * recall / (precision + recall) at every distinct score used as a
    threshold, an image predicted anomalous when its score is >= the threshold (so the
    returned threshold is the lowest anomalous score still flagged).
    """
    precision, recall, thresholds = precision_recall_curve(
        np.asarray(anomalous, dtype=bool), np.asarray(scores, float)
    )
    p, r = precision[:-1], recall[:-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])
