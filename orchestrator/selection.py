"""Choosing a setting on validation data (orchestrator.data.validation), never on test data.

For each candidate value of one parameter, the method is fitted on each category's training
images and scored on its validation set (validation good images + synthetic anomalies); the
value with the highest mean validation metric over the categories wins (ties: the first
value listed). A tie on the metric (the synthetic anomalies can saturate image AUROC at 1.0)
is broken by the mean of ``tie_break`` (default pixel AUROC), then by the order of the values.
``orchestrate choose`` prints the table; registry.yaml records the outcome.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError


def choose_on_validation(
    cls,
    config: dict[str, Any],
    param: str,
    values: Sequence[Any],
    categories,
    source: str = "native",
    device: str = "cpu",
    metric: str = "image_auroc",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    tie_break: str | None = "pixel_auroc",
) -> tuple[Any, list[dict[str, Any]]]:
    """``(chosen value, rows)``; a row per (value, category) with validation metrics."""
    from adapters.common import seed_everything
    from orchestrator.data import load_category
    from orchestrator.data.validation import write_validation_category
    from orchestrator.metrics import evaluate

    if param not in config:
        raise UserError(f"unknown parameter {param!r} (known: {', '.join(sorted(config))})")
    if not values:
        raise UserError("no candidate values given")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="validation-") as tmp:
        folders = [write_validation_category(c, Path(tmp), seed=seed) for c in categories]
        members: dict[Path, list] = {}  # an ensemble's fitted members, reused across values
        for value in values:
            for folder in folders:
                cat = load_category(folder)
                adapter = cls({**config, param: value}, device=device, source=source)
                if folder in members:
                    adapter.use_members(members[folder])
                seed_everything(int(adapter.config.get("seed", 0)))
                adapter.fit(cat.split("train"))
                if hasattr(adapter, "use_members"):
                    members[folder] = adapter.members
                val = cat.split("test")
                m = evaluate(val, adapter.predict(val))
                if metric not in m:
                    raise UserError(f"unknown metric {metric!r} (known: {', '.join(sorted(m))})")
                rows.append({"value": value, "category": cat.name, **m})
                if progress:
                    progress(f"{param}={value} {cat.name}: validation {metric} {m[metric]:.3f}")
    return best_value(rows, values, metric, tie_break), rows


def best_value(
    rows: Sequence[dict[str, Any]], values: Sequence[Any], metric: str, tie_break: str | None
) -> Any:
    """The value with the best mean ``metric`` over its rows; ties by the mean ``tie_break``,
    then by the order of ``values``. A value whose metric is undefined on some category (NaN,
    missing) cannot win."""

    def mean(value: Any, key: str | None) -> float:
        vals = [r.get(key) for r in rows if r["value"] == value] if key else []
        ok = [v for v in vals if v is not None and math.isfinite(v)]
        return sum(ok) / len(ok) if ok and len(ok) == len(vals) else -math.inf

    order = list(values)
    return max(values, key=lambda v: (mean(v, metric), mean(v, tie_break), -order.index(v)))
