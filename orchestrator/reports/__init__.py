"""Reports of a survey: summary tables (CSV / Markdown / LaTeX, the thesis' tables 2.1/2.2
shape: methods x categories with per-method averages), a heat-map, and per-trial figures
(anomaly-map overlays, ROC curve)."""

from orchestrator.reports.figures import heatmap_figure, overlay_grid, roc_figure
from orchestrator.reports.tables import (
    SUMMARY_METRICS,
    console_summary,
    summary_table,
    to_latex,
    to_markdown,
    write_reports,
)

__all__ = [
    "SUMMARY_METRICS",
    "console_summary",
    "heatmap_figure",
    "overlay_grid",
    "roc_figure",
    "summary_table",
    "to_latex",
    "to_markdown",
    "write_reports",
]
