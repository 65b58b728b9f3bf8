"""Output-level ensembles of the same members, the baselines of the feature-level network.

- ``mean``: the average of the members' calibrated (cross-fitted) image probabilities;
- ``cawpe``: Large et al. (2019), weights ``acc_m ** alpha`` (alpha = 4) from each member's
  cross-validated accuracy; the accuracy used for a fold's images is measured on the other
  folds only, so no image's weight sees its own label;
- maps: each member's maps normalised by the mean and standard deviation of its maps on
  normal reference images (the validation split), then averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold

from adapters.base import Predictions


def calibrated(
    scores: np.ndarray, labels: np.ndarray, kind: str = "bounded_sigmoid", k: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold calibrated probabilities of one member's image scores."""
    from orchestrator.calibration import cross_fit

    return cross_fit(kind, scores, labels, k=k, seed=seed)


def _folds(labels: np.ndarray, k: int, seed: int):
    k = max(2, min(k, int(labels.sum()), int((~labels).sum())))
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(labels, labels)


def mean_probs(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(probs), axis=0)


def cawpe_weights(
    probs: Sequence[np.ndarray], labels: np.ndarray, alpha: float = 4.0
) -> np.ndarray:
    """``accuracy ** alpha`` per member (accuracy of its probabilities at 0.5)."""
    y = np.asarray(labels, bool)
    acc = np.array([np.mean((np.asarray(p) >= 0.5) == y) for p in probs])
    return acc**alpha


def cawpe_probs(
    probs: Sequence[np.ndarray], labels: np.ndarray, alpha: float = 4.0, k: int = 5, seed: int = 0
) -> np.ndarray:
    """CAWPE-combined probabilities, weights cross-fitted (each fold weighted by the others)."""
    y = np.asarray(labels, bool)
    p = np.stack(probs)  # [M, N]
    out = np.empty(p.shape[1])
    for train, test in _folds(y, k, seed):
        w = cawpe_weights([q[train] for q in p], y[train], alpha)
        w = w if w.sum() > 0 else np.ones_like(w)
        out[test] = (w[:, None] * p[:, test]).sum(axis=0) / w.sum()
    return out


def normalised_mean_maps(maps: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> np.ndarray:
    """Average of ``(map - mean_ref) / std_ref`` per member (ref: its maps on normal images)."""
    out = []
    for m, r in zip(maps, reference, strict=True):
        mu, sd = float(np.mean(r)), float(np.std(r))
        out.append((m - mu) / (sd if sd > 0 else 1.0))
    return np.mean(np.stack(out), axis=0).astype(np.float32)


def output_ensembles(
    member_preds: Sequence[Predictions],
    labels: np.ndarray,
    reference_maps: Sequence[np.ndarray],
    kind: str = "bounded_sigmoid",
    alpha: float = 4.0,
    seed: int = 0,
) -> dict[str, Predictions]:
    """``{"mean": ..., "cawpe": ...}`` Predictions whose scores are ensemble probabilities."""
    y = np.asarray(labels, bool)
    probs = [calibrated(p.image_scores, y, kind, seed=seed) for p in member_preds]
    maps = normalised_mean_maps([p.anomaly_maps for p in member_preds], reference_maps)
    keys = list(member_preds[0].keys)
    return {
        "mean": Predictions(mean_probs(probs), maps, keys),
        "cawpe": Predictions(cawpe_probs(probs, y, alpha, seed=seed), maps, keys),
    }
