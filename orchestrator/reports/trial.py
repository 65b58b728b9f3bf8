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


def write_trial_artifacts(out: Path, test, preds, probs, title: str) -> None:
    """scores.csv, overlays.png, roc.png, reliability.png for one trial into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from orchestrator.reports.figures import overlay_grid, roc_figure

    labels = test.labels
    pd.DataFrame(
        {
            "key": [s.key for s in test],
            "label": labels,
            "score": preds.image_scores,
            "probability": probs if probs is not None else np.nan,
        }
    ).to_csv(out / "scores.csv", index=False)
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
    fig = roc_figure(preds.image_scores, test.is_anomalous, labels, title=title)
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    if probs is not None:
        reliability_png(
            out / "reliability.png", probs, test.is_anomalous, f"{title} (bounded sigmoid)"
        )


def reliability_png(path: Path, probs: np.ndarray, y: np.ndarray, title: str) -> None:
    """A reliability diagram of ``probs`` (fitted on validation) against the labels ``y``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrator.calibration import reliability_figure

    fig = reliability_figure(probs, y, title=title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
