"""Summary tables (CSV / Markdown / LaTeX), heat-map, per-trial figures, progress line."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from orchestrator.reports import (
    console_summary,
    overlay_grid,
    roc_figure,
    summary_table,
    to_latex,
    to_markdown,
    write_reports,
)
from orchestrator.scheduling import Progress

ROWS = [
    {
        "method": "a",
        "category": "x",
        "profile": "quick",
        "status": "done",
        "image_auroc_mean": 0.9,
        "pixel_auroc": 0.8,
    },
    {
        "method": "a",
        "category": "y",
        "profile": "quick",
        "status": "done",
        "image_auroc_mean": 0.7,
        "pixel_auroc": 0.6,
    },
    {"method": "b", "category": "x", "profile": "quick", "status": "done", "image_auroc_mean": 0.5},
    {"method": "b", "category": "y", "profile": "quick", "status": "failed", "error": "oops"},
]


def test_summary_table_shape_and_averages():
    t = summary_table(ROWS, "image_auroc_mean")
    assert list(t.columns) == ["x", "y", "Average"]
    assert list(t.index) == [("a", "quick"), ("b", "quick")]
    assert t.loc[("a", "quick"), "Average"] == pytest.approx(0.8)
    assert t.loc[("b", "quick"), "y"] == "FAILED"
    assert t.loc[("b", "quick"), "Average"] == pytest.approx(0.5)  # over what finished
    px = summary_table(ROWS, "pixel_auroc")
    assert pd.isna(px.loc[("b", "quick"), "x"])  # missing metric: empty cell, not 0


def test_markdown_latex_console():
    t = summary_table(ROWS, "image_auroc_mean")
    md = to_markdown(t, "image_auroc_mean")
    assert "| Method | Profile | x | y | Average |" in md
    assert "| a | quick | 0.900 | 0.700 | 0.800 |" in md
    assert "| b | quick | 0.500 | FAILED | 0.500 |" in md
    tex = to_latex(t, "image_auroc_mean")
    assert "\\begin{tabular}{llrrr}" in tex and "a & quick & 0.900 & 0.700 & 0.800 \\\\" in tex
    assert "image\\_auroc\\_mean" in tex
    text = console_summary(ROWS)
    assert "image_auroc_mean" in text and "failed trials:" in text and "b / y: oops" in text


def test_write_reports(tmp_path):
    files = write_reports(ROWS, tmp_path)
    names = {f.name for f in files}
    assert {
        "trials.csv",
        "summary.md",
        "summary.tex",
        "summary_image_auroc_mean.csv",
        "summary_pixel_auroc.csv",
        "heatmap_image_auroc_mean.png",
    } <= names
    back = pd.read_csv(tmp_path / "summary_image_auroc_mean.csv", index_col=[0, 1])
    assert float(back.loc[("a", "quick"), "x"]) == 0.9 and back.loc[("b", "quick"), "y"] == "FAILED"
    assert (tmp_path / "heatmap_image_auroc_mean.png").read_bytes()[:4] == b"\x89PNG"


def test_figures():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (5, 16, 20, 3), np.uint8)
    maps = rng.random((5, 16, 20)).astype(np.float32)
    masks = np.zeros((5, 16, 20), bool)
    masks[1, 4:8, 4:8] = True
    fig = overlay_grid(imgs, maps, [str(i) for i in range(5)], masks=masks, ncols=3)
    assert len([ax for ax in fig.axes if ax.images]) == 5
    labels = np.array(["good"] * 4 + ["logical"] * 3 + ["structural"] * 3)
    scores = np.r_[np.zeros(4), np.ones(6)]
    fig = roc_figure(scores, labels != "good", labels)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["all (AUROC 1.000)", "logical (AUROC 1.000)", "structural (AUROC 1.000)"]


def test_progress_counts_and_plain_lines():
    buf = io.StringIO()
    p = Progress(3, stream=buf, label="survey")
    p.started("a")
    p.started("b")
    p.finished("a")
    p.errored("b", final=False)
    p.errored("b", final=True)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5  # not a tty: one plain line per event
    assert lines[-1].startswith("[survey] 2/3 | running 0 | done 1 | failed 1 retried 1")
    assert "FAILED b" in lines[-1] and "eta" in lines[-1]


def test_seeds_table_mean_std_n():
    from orchestrator.reports.tables import summarise, to_text

    vals = {("a", "x"): [0.9, 0.8, 0.7], ("a", "y"): [0.5, 0.7, 0.6]}
    rows = [
        {"method": m, "category": c, "profile": "quick", "seed": s, "status": "done",
         "image_auroc_mean": v}
        for (m, c), vs in vals.items()
        for s, v in enumerate(vs)
    ]  # fmt: skip
    rows += [
        {"method": "b", "category": "x", "profile": "quick", "seed": 0, "status": "done",
         "image_auroc_mean": 0.4},
        {"method": "b", "category": "x", "profile": "quick", "seed": 1, "status": "failed"},
        {"method": "b", "category": "y", "profile": "quick", "seed": 0, "status": "failed"},
    ]  # fmt: skip
    s = summarise(rows, "image_auroc_mean")
    a = ("a", "quick")
    assert s.mean.loc[a, "x"] == pytest.approx(0.8) and s.n.loc[a, "x"] == 3
    assert s.std.loc[a, "x"] == pytest.approx(np.std([0.9, 0.8, 0.7], ddof=1))
    # Average: per seed the mean over categories (0.7, 0.75, 0.65), then mean and std of those
    per_seed = [(0.9 + 0.5) / 2, (0.8 + 0.7) / 2, (0.7 + 0.6) / 2]
    assert s.mean.loc[a, "Average"] == pytest.approx(np.mean(per_seed))
    assert s.std.loc[a, "Average"] == pytest.approx(np.std(per_seed, ddof=1))
    b = ("b", "quick")
    assert s.mean.loc[b, "x"] == pytest.approx(0.4) and s.n.loc[b, "x"] == 1  # one seed failed
    assert s.mean.loc[b, "y"] == "FAILED" and s.n.loc[b, "y"] == 0
    text = to_text(s.mean, "image_auroc_mean", s)
    assert "0.800 ± 0.100 (n=3)" in text and "0.400 (n=1)" in text and "FAILED" in text
    assert s.mean.loc[b, "Average"] == pytest.approx(0.4) and s.n.loc[b, "Average"] == 1
    # a seed missing one category is left out of the Average, not averaged over fewer
    partial = [
        r for r in rows if not (r["method"] == "a" and r["category"] == "y" and r["seed"] == 2)
    ]
    p = summarise(partial, "image_auroc_mean")
    assert p.n.loc[a, "Average"] == 2
    assert p.mean.loc[a, "Average"] == pytest.approx(np.mean(per_seed[:2]))
    # one seed per cell: plain numbers, as before
    single = summarise([r for r in rows if r.get("seed") == 0], "image_auroc_mean")
    assert not single.has_spread
    assert "±" not in to_text(single.mean, "image_auroc_mean", single)
