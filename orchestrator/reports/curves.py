"""The survey's training-curves figure: every method's curves per category, from the trials'
step metrics (orchestrator.tracking.curves), plus the points as a CSV.

Losses of different methods live on different scales (a flow's negative log-likelihood, a
distillation's cosine distance, a discriminator's hinge), so each loss curve is drawn divided
by its first epoch's value (the shape of the training, not its units); the AUROC row is drawn
as logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.tracking.curves import AUROC_CURVE, CURVE_METRICS, LOSS_METRIC

FIGURE = "training_curves.png"
TABLE = "training_curves.csv"


def curve_points(uri: str, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The curve points of every finished trial in ``rows`` (with a ``run_id``): columns
    method, category, seed, run_id, metric, step, value."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    out = []
    for r in rows:
        if r.get("status", "done") != "done" or not r.get("run_id"):
            continue
        if not any(m in r for m in CURVE_METRICS):  # rows from the store carry every metric
            continue
        for metric in CURVE_METRICS:
            for m in client.get_metric_history(r["run_id"], metric):
                out.append(
                    {
                        "method": r["method"],
                        "category": r["category"],
                        "seed": r.get("seed"),
                        "run_id": r["run_id"],
                        "metric": metric,
                        "step": int(m.step),
                        "value": float(m.value),
                    }
                )
    columns = ["method", "category", "seed", "run_id", "metric", "step", "value"]
    return pd.DataFrame(out, columns=columns).sort_values(["method", "category", "run_id", "step"])


def curves_figure(points: pd.DataFrame):
    """One column per category; top row the loss (relative to epoch 1, log scale), bottom
    row the validation image AUROC; one colour per method (each seed a line)."""
    from orchestrator.reports.figures import _plt

    plt = _plt()
    cats = sorted(points["category"].unique())
    methods = sorted(points["method"].unique())
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(
        2, len(cats), figsize=(4.2 * len(cats), 6.4), squeeze=False, sharex="col"
    )
    for j, cat in enumerate(cats):
        loss_ax, auc_ax = axes[0][j], axes[1][j]
        loss_ax.set_title(cat)
        for (method, run_id), g in points[points["category"] == cat].groupby(["method", "run_id"]):
            label = method if run_id == _first_run(points, method, cat) else None
            loss = g[g["metric"] == LOSS_METRIC]
            if len(loss):
                first = loss["value"].iloc[0]
                rel = loss["value"] / first if first > 0 else loss["value"]
                loss_ax.plot(loss["step"], rel, color=colours[method], lw=1.2, label=label)
            auc = g[g["metric"] == AUROC_CURVE]
            if len(auc):
                colour = colours[method]
                auc_ax.plot(auc["step"], auc["value"], "o-", color=colour, ms=4, label=label)
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("train loss / epoch-1 loss")
        auc_ax.set_ylabel("validation image AUROC")
        auc_ax.set_xlabel("epoch")
        auc_ax.set_ylim(0.0, 1.02)
        for ax in (loss_ax, auc_ax):
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle("training curves (validation AUROC for plotting only: no epoch is picked)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    return fig


def _first_run(points: pd.DataFrame, method: str, category: str) -> str:
    sel = points[(points["method"] == method) & (points["category"] == category)]
    return str(sel["run_id"].iloc[0])


def write_training_curves(uri: str, rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list:
    """``training_curves.png`` and ``.csv`` in ``out_dir`` when any trial logged a curve;
    returns the files written (none when no method trains, or the store cannot be read)."""
    try:
        points = curve_points(uri, rows)
    except Exception:  # noqa: BLE001 - a lost store: the tables are written without curves
        return []
    if points.empty:
        return []
    out_dir = Path(out_dir)
    points.to_csv(out_dir / TABLE, index=False)
    fig = curves_figure(points)
    fig.savefig(out_dir / FIGURE, dpi=120, bbox_inches="tight")
    from orchestrator.reports.figures import _plt

    _plt().close(fig)
    return [out_dir / TABLE, out_dir / FIGURE]
