"""The comparison table of an ensemble job: one row per (approach, category), from the
trials' results or rebuilt from a finished trial's MLflow metrics, and its Markdown form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def combo_name(combo: Sequence[str]) -> str:
    return "+".join(combo)


def member_rows(outcomes, profile: str) -> list[dict[str, Any]]:
    return [
        {
            "method": o.spec["method"],
            "kind": "member",
            "category": o.spec["category"],
            "profile": profile,
            "seed": o.spec["seed"],
            "status": "failed",
            "error": o.error,
        }
        for o in outcomes
        if not o.ok
    ]


def write_comparison(rows, folder: Path) -> None:
    (folder / "comparison.md").write_text(comparison_markdown(rows) + "\n")


@dataclass
class Finished:
    """A trial finished by an earlier run, shaped like a successful TrialOutcome."""

    rows: list[dict[str, Any]]
    ok: bool = True

    @property
    def result(self) -> dict[str, Any]:
        return {"rows": self.rows}


def rows_from_run(run, profile: str) -> list[dict[str, Any]]:
    """The comparison rows of a finished ensemble trial, rebuilt from its MLflow metrics."""
    combo = run.data.tags["members"]
    category = run.data.tags["category"]
    seed_tag = run.data.tags.get("seed", "")
    seed = int(seed_tag) if seed_tag.isdigit() else None
    labels = {"feature": (f"feature[{combo}]", "feature")}
    labels |= {f"output_{k}": (f"{k}[{combo}]", "output") for k in ("mean", "cawpe")}
    labels |= {f"member.{m}": (m, "member") for m in combo.split("+")}
    rows = []
    for prefix, (approach, kind) in labels.items():
        metrics = {
            k[len(prefix) + 1 :]: v
            for k, v in run.data.metrics.items()
            if k.startswith(prefix + ".")
        }
        if metrics:
            rows.append(
                {
                    "method": approach,
                    "kind": kind,
                    "combination": combo,
                    "category": category,
                    "profile": profile,
                    "seed": seed,
                    "status": "done",
                    **metrics,
                }
            )
    return rows


def comparison_rows(outcomes) -> list[dict[str, Any]]:
    """One row per (approach, category), a member's row once however many combinations."""
    rows, seen = [], set()
    for o in outcomes:
        if not o.ok:
            rows.append(
                {
                    "method": combo_name(o.spec["combo"]),
                    "kind": "feature",
                    "category": o.spec["category"],
                    "profile": o.spec["profile"],
                    "seed": o.spec.get("seed"),
                    "status": "failed",
                    "error": o.error,
                }
            )
            continue
        for r in o.result["rows"]:
            k = (r["method"], r["category"], r.get("seed"))
            if k not in seen:
                seen.add(k)
                rows.append(r)
    return rows


def comparison_markdown(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] = (
        "image_auroc_mean",
        "image_auroc",
        "pixel_auroc",
        "au_spro_0.05",
        "ece",
    ),
) -> str:
    """Members vs output-level vs feature-level, one line per (approach, category); over
    several seeds a cell is ``mean ± std (n=k)``."""
    present = [m for m in metrics if any(m in r for r in rows)]
    head = "| approach | kind | category | " + " | ".join(present) + " |"
    lines = [head, "|" + "---|" * (3 + len(present))]
    order = {"member": 0, "output": 1, "feature": 2}
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["category"], r.get("kind", ""), r["method"]), []).append(r)
    for cat, kind, method in sorted(groups, key=lambda k: (k[0], order.get(k[1], 3), k[2])):
        group = groups[(cat, kind, method)]
        done = [r for r in group if r.get("status") == "done"]
        several = len({r.get("seed") for r in group}) > 1
        cells = []
        for m in present:
            vals = [float(r[m]) for r in done if r.get(m) is not None]
            if not done:
                cells.append("FAILED")
            elif not vals:
                cells.append("")
            elif several:
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
                spread = f" ± {sd:.3f}" if len(vals) > 1 else ""
                cells.append(f"{np.mean(vals):.3f}{spread} (n={len(vals)})")
            else:
                cells.append(f"{vals[0]:.3f}")
        lines.append(f"| {method} | {kind} | {cat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
