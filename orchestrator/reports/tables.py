"""Summary tables: one per metric, a row per (method, profile), a column per category and
the per-method average, as the thesis' tables 2.1/2.2. Rows are plain dicts with ``method``,
``category``, ``profile``, ``seed``, ``status`` (``done``/``failed``) and metric values;
several seeds of a cell give ``mean ± std (n=k)``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass
class Summary:
    """One metric's table: ``mean`` (floats, ``"FAILED"`` or None), ``std`` (sample standard
    deviation over seeds, NaN below two) and ``n`` (finished seeds), same index and columns."""

    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame

    @property
    def has_spread(self) -> bool:
        return bool((self.n.to_numpy() > 1).any())


def _mean_std(values: Sequence[float]) -> tuple[float | None, float]:
    if not values:
        return None, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def method_label(row: Mapping[str, Any]) -> str:
    """A row's method as the tables show it: with its preprocessing when it has one
    (``patchcore [mask-background margin=8]``), so two arms never share a row."""
    pre = str(row.get("preprocess") or "none")
    return str(row["method"]) if pre == "none" else f"{row['method']} [{pre}]"


def summarise(rows: Sequence[Mapping[str, Any]], metric: str) -> Summary:
    """methods x categories (+ ``Average``) for ``metric``, over the seeds of each cell.

    Index: ``(method, profile)``. A cell is the mean over its finished trials (one per seed);
    a cell whose trials all failed is ``"FAILED"``. ``Average`` is, per seed, the mean over
    the categories with a value, then the mean and std of those over the seeds that have
    every one of those categories.
    """
    cats = sorted({str(r["category"]) for r in rows})
    keys = sorted({(method_label(r), str(r.get("profile", ""))) for r in rows})
    values: dict[tuple[str, str], dict[str, dict[Any, float]]] = {
        k: {c: {} for c in cats} for k in keys
    }
    failed: set[tuple[tuple[str, str], str]] = set()
    for r in rows:
        k, c = (method_label(r), str(r.get("profile", ""))), str(r["category"])
        v = _num(r.get(metric)) if r.get("status", "done") == "done" else None
        if r.get("status", "done") != "done":
            failed.add((k, c))
        elif v is not None:
            values[k][c][r.get("seed")] = v
    mean: dict[tuple[str, str], dict[str, Any]] = {}
    std: dict[tuple[str, str], dict[str, float]] = {}
    n: dict[tuple[str, str], dict[str, int]] = {}
    for k in keys:
        mean[k], std[k], n[k] = {}, {}, {}
        for c in cats:
            vals = list(values[k][c].values())
            m, sd = _mean_std(vals)
            mean[k][c] = FAILED if m is None and (k, c) in failed else m
            std[k][c], n[k][c] = sd, len(vals)
        # per seed, the mean over the categories with a value; a seed missing a category
        # that others have is left out (its average would cover other categories)
        seeds = {s for c in cats for s in values[k][c]}
        with_value = [c for c in cats if values[k][c]]
        complete = [s for s in seeds if all(s in values[k][c] for c in with_value)]
        averages = [sum(values[k][c][s] for c in with_value) / len(with_value) for s in complete]
        mean[k][AVERAGE], std[k][AVERAGE] = _mean_std(averages)
        n[k][AVERAGE] = len(averages)
    index = pd.MultiIndex.from_tuples(keys, names=["method", "profile"])
    cols = [*cats, AVERAGE]

    def frame(d: dict) -> pd.DataFrame:
        df = pd.DataFrame.from_dict(d, orient="index", columns=cols)
        df.index = index
        return df

    return Summary(frame(mean), frame(std), frame(n))


def summary_table(rows: Sequence[Mapping[str, Any]], metric: str) -> pd.DataFrame:
    """The means of :func:`summarise` (what the heat-map shows)."""
    return summarise(rows, metric).mean


def stats_long(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (method, profile, category, metric): mean, std, n."""
    out = []
    for metric in metrics:
        s = summarise(rows, metric)
        for (method, profile), row in s.mean.iterrows():
            for col, v in row.items():
                out.append(
                    {
                        "method": method,
                        "profile": profile,
                        "category": col,
                        "metric": metric,
                        "mean": v if isinstance(v, float) else None,
                        "std": s.std.loc[(method, profile), col],
                        "n": int(s.n.loc[(method, profile), col]),
                    }
                )
    return pd.DataFrame(out)


def _cell(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _digits(metric: str) -> int:
    return 1 if metric.endswith(("_seconds", "_mb")) else 3


def _grid(
    df: pd.DataFrame, metric: str, spread: Summary | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and body cells; with a spread that has several seeds: ``mean ± std (n=k)``."""
    header = ["Method", "Profile", *map(str, df.columns)]
    digits = _digits(metric)
    body = []
    for (m, p), row in zip(df.index, df.itertuples(index=False), strict=True):
        cells = []
        for col, v in zip(df.columns, row, strict=True):
            text = _cell(v, digits)
            if spread is not None and spread.has_spread and isinstance(v, float) and v == v:
                sd, k = spread.std.loc[(m, p), col], int(spread.n.loc[(m, p), col])
                text += f" ± {_cell(float(sd), digits)}" if k > 1 else ""
                text += f" (n={k})"
            cells.append(text)
        body.append([m, p, *cells])
    return header, body


def to_markdown(df: pd.DataFrame, metric: str, spread: Summary | None = None) -> str:
    header, body = _grid(df, metric, spread)
    lines = [f"**{metric}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    return s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")


def to_latex(df: pd.DataFrame, metric: str, spread: Summary | None = None) -> str:
    header, body = _grid(df, metric, spread)
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


def to_text(df: pd.DataFrame, metric: str, spread: Summary | None = None) -> str:
    """A fixed-width table for the console."""
    header, body = _grid(df, metric, spread)
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
    parts = []
    for m in metrics:
        s = summarise(rows, m)
        parts.append(to_text(s.mean, m, s))
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
        s = summarise(rows, m)
        s.mean.to_csv(out_dir / f"summary_{m}.csv")
        md_all.append(to_markdown(s.mean, m, s))
        tex_all.append(to_latex(s.mean, m, s))
        written.append(out_dir / f"summary_{m}.csv")
    stats_long(rows, metrics).to_csv(out_dir / "summary_stats.csv", index=False)
    written.append(out_dir / "summary_stats.csv")
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
