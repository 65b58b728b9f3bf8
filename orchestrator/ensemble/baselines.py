"""Output-level ensembles of the same members, the baselines of the feature-level network.

Everything they fit is fitted on the validation set (orchestrator.data.validation: validation
good images + synthetic anomalies), never on test labels:

- ``mean``: the average of the members' calibrated image probabilities (one calibrator per
  member, fitted on its validation scores);
- ``cawpe``: Large et al. (2019), weights ``acc_m ** alpha`` (alpha = 4) from each member's
  accuracy on the validation set (its out-of-fold calibrated validation probabilities);
- maps: each member's maps normalised by the mean and standard deviation of its maps on the
  validation good images, then averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adapters.base import Predictions


def calibrated(
    scores: np.ndarray, labels: np.ndarray, kind: str = "bounded_sigmoid", k: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold calibrated probabilities of one member's image scores."""
    from orchestrator.calibration import cross_fit

    return cross_fit(kind, scores, labels, k=k, seed=seed)


def mean_probs(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(probs), axis=0)


def cawpe_weights(
    probs: Sequence[np.ndarray], labels: np.ndarray, alpha: float = 4.0
) -> np.ndarray:
    """``accuracy ** alpha`` per member (accuracy of its probabilities at 0.5)."""
    y = np.asarray(labels, bool)
    acc = np.array([np.mean((np.asarray(p) >= 0.5) == y) for p in probs])
    return acc**alpha


def normalised_mean_maps(maps: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> np.ndarray:
    """Average of ``(map - mean_ref) / std_ref`` per member (ref: its maps on normal images)."""
    out = []
    for m, r in zip(maps, reference, strict=True):
        mu, sd = float(np.mean(r)), float(np.std(r))
        out.append((m - mu) / (sd if sd > 0 else 1.0))
    return np.mean(np.stack(out), axis=0).astype(np.float32)


def output_ensembles(
    member_preds: Sequence[Predictions],
    member_val_preds: Sequence[Predictions],
    val_labels: np.ndarray,
    kind: str = "bounded_sigmoid",
    alpha: float = 4.0,
    seed: int = 0,
) -> dict[str, Predictions]:
    """``{"mean": ..., "cawpe": ...}`` Predictions of the test images whose scores are
    ensemble probabilities; calibrators, CAWPE weights and map normalisation are fitted on
    the members' predictions of the validation set (``member_val_preds``, ``val_labels``)."""
    from orchestrator.calibration import fit_calibrator

    yv = np.asarray(val_labels, bool)
    probs = [
        fit_calibrator(kind, v.image_scores, yv).predict(p.image_scores)
        for p, v in zip(member_preds, member_val_preds, strict=True)
    ]
    val_probs = [calibrated(v.image_scores, yv, kind, seed=seed) for v in member_val_preds]
    w = cawpe_weights(val_probs, yv, alpha)
    w = w if w.sum() > 0 else np.ones_like(w)
    reference = [v.anomaly_maps[~yv] for v in member_val_preds]
    maps = normalised_mean_maps([p.anomaly_maps for p in member_preds], reference)
    keys = list(member_preds[0].keys)
    cawpe = (w[:, None] * np.stack(probs)).sum(axis=0) / w.sum()
    return {
        "mean": Predictions(mean_probs(probs), maps, keys),
        "cawpe": Predictions(cawpe, maps, keys),
    }
