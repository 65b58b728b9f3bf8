"""Reliability measures (ECE, Brier, NLL), honest cross-fitting, and the reliability figure."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from orchestrator.calibration.calibrators import make_calibrator


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10, strategy: str = "width") -> float:
    """Expected calibration error: sum over bins of (bin share) * |mean prob - positive rate|.

    ``strategy``: ``"width"`` (equal-width bins on [0, 1]) or ``"mass"`` (equal-mass bins).
    """
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=float)
    if strategy == "width":
        edges = np.linspace(0, 1, n_bins + 1)[1:-1]
    elif strategy == "mass":
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])
    else:
        raise ValueError("strategy must be 'width' or 'mass'")
    idx = np.searchsorted(edges, p, side="right")
    total = 0.0
    for b in np.unique(idx):
        sel = idx == b
        total += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared difference between probability and outcome."""
    return float(np.mean((np.asarray(probs, float) - np.asarray(labels, float)) ** 2))


def nll(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (probabilities clipped to [eps, 1 - eps])."""
    p = np.clip(np.asarray(probs, float), eps, 1 - eps)
    y = np.asarray(labels, bool)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def cross_fit(
    kind: str, scores: np.ndarray, labels: np.ndarray, k: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold probabilities: each sample is calibrated by a calibrator fitted without it.

    Stratified k-fold (k reduced to the smaller class count when needed, at least 2).
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    smaller = int(min(labels.sum(), (~labels).sum()))
    if smaller < 2:
        raise ValueError(
            f"cross-fitting needs at least 2 samples of each class "
            f"({int(labels.sum())} anomalous, {int((~labels).sum())} normal)"
        )
    k = max(2, min(k, smaller))
    out = np.empty(len(scores))
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in folds.split(scores, labels):
        cal = make_calibrator(kind).fit(scores[train], labels[train])
        out[test] = cal.predict(scores[test])
    return out


def calibration_report(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ECE (10 equal-width and 10 equal-mass bins), Brier score and NLL of probabilities."""
    return {
        "ece": ece(probs, labels),
        "ece_mass": ece(probs, labels, strategy="mass"),
        "brier": brier(probs, labels),
        "nll": nll(probs, labels),
    }


def reliability_figure(
    probs: np.ndarray,
    labels: np.ndarray,
    n_bins: int = 10,
    title: str = "",
    scores: np.ndarray | None = None,
):
    """Reliability diagram and per-class histograms, as a matplotlib Figure (Agg canvas).

    Left: mean predicted probability vs observed fraction of anomalies per equal-width bin
    (the diagonal is perfect calibration; marker size ~ bin count), with ECE in the title.
    Middle: histogram of predicted probabilities per class. Right (when ``scores`` are
    given): histogram of the raw anomaly scores per class. Save with ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI

    p = np.asarray(probs, float)
    y = np.asarray(labels, bool)
    n_axes = 3 if scores is not None else 2
    fig = Figure(figsize=(4.5 * n_axes, 4))
    axes = fig.subplots(1, n_axes)
    ax1, ax2 = axes[0], axes[1]
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    centers, rates, counts = [], [], []
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            centers.append(p[sel].mean())
            rates.append(y[sel].mean())
            counts.append(int(sel.sum()))
    ax1.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax1.plot(centers, rates, "-", color="tab:orange")
    sizes = 20 + 200 * np.asarray(counts, float) / max(1, len(p))
    ax1.scatter(centers, rates, s=sizes, color="tab:orange", zorder=3, label="observed")
    ax1.set(xlabel="predicted probability", ylabel="fraction anomalous", xlim=(0, 1), ylim=(0, 1))
    ax1.set_title(f"reliability (ECE {ece(p, y, n_bins):.3f})")
    ax1.legend(loc="upper left")
    ax2.hist([p[~y], p[y]], bins=edges, label=["good", "anomalous"], color=["tab:blue", "tab:red"])
    ax2.set(xlabel="predicted probability", ylabel="images", title="probabilities per class")
    ax2.legend()
    if scores is not None:
        sc = np.asarray(scores, float)
        ax3 = axes[2]
        bins = np.histogram_bin_edges(sc, bins=20)
        ax3.hist(sc[~y], bins=bins, alpha=0.6, label="good", color="tab:blue")
        ax3.hist(sc[y], bins=bins, alpha=0.6, label="anomalous", color="tab:red")
        ax3.set(xlabel="anomaly score", ylabel="images", title="raw scores per class")
        ax3.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
