"""Summary tables: one per metric, a row per (method, profile), a column per category and
the per-method average, as the thesis' tables 2.1/2.2. Rows are plain dicts with ``method``,
``category``, ``profile``, ``status`` (``done``/``failed``) and metric values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: Metrics tabulated, in this order, when present in any row.
SUMMARY_METRICS = (
    "image_auroc_mean",
    "image_auroc",
    "image_auroc_logical",
    "image_auroc_structural",
    "pixel_auroc",
    "au_pro",
    "au_spro_0.01",
    "au_spro_0.05",
    "au_spro_0.1",
    "au_spro_0.3",
    "au_spro_1.0",
    "f1_max",
    "ece",
    "fit_seconds",
    "predict_seconds",
    "peak_memory_mb",
)
#: Tables printed on the console at the end of a survey.
CONSOLE_METRICS = ("image_auroc_mean", "image_auroc", "pixel_auroc", "au_spro_0.05")
AVERAGE = "Average"
FAILED = "FAILED"


def present_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [m for m in SUMMARY_METRICS if any(_num(r.get(m)) is not None for r in rows)]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def summary_table(rows: Sequence[Mapping[str, Any]], metric: str) -> pd.DataFrame:
    """methods x categories (+ ``Average`` over the categories with a value) for ``metric``.

    Index: ``(method, profile)``. Cells: floats; a failed trial is ``"FAILED"``, a missing
    value ``None``.
    """
    cats = sorted({str(r["category"]) for r in rows})
    keys = sorted({(str(r["method"]), str(r.get("profile", ""))) for r in rows})
    data: dict[tuple[str, str], dict[str, Any]] = {k: dict.fromkeys(cats) for k in keys}
    for r in rows:
        cell = data[(str(r["method"]), str(r.get("profile", "")))]
        if r.get("status", "done") != "done":
            if cell[str(r["category"])] is None:
                cell[str(r["category"])] = FAILED
            continue
        cell[str(r["category"])] = _num(r.get(metric))
    for cell in data.values():
        vals = [v for v in cell.values() if isinstance(v, float)]
        cell[AVERAGE] = sum(vals) / len(vals) if vals else None
    df = pd.DataFrame.from_dict(data, orient="index", columns=[*cats, AVERAGE])
    df.index = pd.MultiIndex.from_tuples(keys, names=["method", "profile"])
    return df


def _cell(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _digits(metric: str) -> int:
    return 1 if metric.endswith(("_seconds", "_mb")) else 3


def _grid(df: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    header = ["Method", "Profile", *map(str, df.columns)]
    body = [
        [m, p, *(_cell(v, _digits(metric)) for v in row)]
        for (m, p), row in zip(df.index, df.itertuples(index=False), strict=True)
    ]
    return header, body


def to_markdown(df: pd.DataFrame, metric: str) -> str:
    header, body = _grid(df, metric)
    lines = [f"**{metric}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    return s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")


def to_latex(df: pd.DataFrame, metric: str) -> str:
    header, body = _grid(df, metric)
    cols = "ll" + "r" * (len(header) - 2)
    lines = [
        "\\begin{table}[ht]",
        "\\centering",
        f"\\begin{{tabular}}{{{cols}}}",
        "\\hline",
        " & ".join(_tex(h) for h in header) + " \\\\",
        "\\hline",
        *(" & ".join(_tex(c) for c in r) + " \\\\" for r in body),
        "\\hline",
        "\\end{tabular}",
        f"\\caption{{{_tex(metric)} per method and category (with per-method average).}}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_text(df: pd.DataFrame, metric: str) -> str:
    """A fixed-width table for the console."""
    header, body = _grid(df, metric)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )
    return "\n".join([metric, fmt(header), *(fmt(r) for r in body)]) + "\n"


def console_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The tables printed at the end of a survey, plus the list of failed trials."""
    metrics = [m for m in CONSOLE_METRICS if m in present_metrics(rows)]
    if "image_auroc_mean" in metrics and "image_auroc" in metrics:
        metrics.remove("image_auroc")
    parts = [to_text(summary_table(rows, m), m) for m in metrics]
    if not parts and rows:
        parts.append(to_text(summary_table(rows, "image_auroc"), "image_auroc"))
    failed = [r for r in rows if r.get("status", "done") != "done"]
    if failed:
        lines = ["failed trials:"]
        lines += [f"  {r['method']} / {r['category']}: {r.get('error', '')}" for r in failed]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_reports(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Every summary table as CSV, Markdown and LaTeX, all rows as ``trials.csv``, a heat-map
    PNG of the main metric; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pd.DataFrame([dict(r) for r in rows]).to_csv(out_dir / "trials.csv", index=False)
    written.append(out_dir / "trials.csv")
    md_all, tex_all = [], []
    metrics = present_metrics(rows)
    for m in metrics:
        df = summary_table(rows, m)
        df.to_csv(out_dir / f"summary_{m}.csv")
        md_all.append(to_markdown(df, m))
        tex_all.append(to_latex(df, m))
        written.append(out_dir / f"summary_{m}.csv")
    (out_dir / "summary.md").write_text("\n".join(md_all))
    (out_dir / "summary.tex").write_text("\n".join(tex_all))
    written += [out_dir / "summary.md", out_dir / "summary.tex"]
    main = next((m for m in ("image_auroc_mean", "image_auroc") if m in metrics), None)
    if main:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from orchestrator.reports.figures import heatmap_figure

        fig = heatmap_figure(summary_table(rows, main), main)
        fig.savefig(out_dir / f"heatmap_{main}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / f"heatmap_{main}.png")
    return written
