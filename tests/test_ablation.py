"""`orchestrate ablation background`: both arms under one parent run, the side-by-side table
(Δ = masked − original), the overlay figures, and `orchestrate report` rebuilding the table."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from orchestrator.cli import main
from orchestrator.reports.ablation import ablation_table


def test_ablation_background_end_to_end(tiny_synthetic, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out_dir = tmp_path / "out"
    argv = [
        "ablation",
        "background",
        "--dataset",
        str(tiny_synthetic),
        "--categories",
        "flat_connector",
        "--methods",
        "pixelstats",
        "--preprocess-margin",
        "4",
        "--in-process",
        "--tracking-uri",
        uri,
        "--output-dir",
        str(out_dir),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "original vs mask-background margin=4" in printed
    assert "| pixelstats | flat_connector | image_auroc_mean |" in printed

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ablation").experiment_id
    (parent,) = client.search_runs([exp], "tags.`orchestrator.role` = 'ablation'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["preprocess"] == "none vs mask-background"
    assert parent.data.tags["preprocess.margin"] == "4"
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_arm = {r.data.tags["ablation_arm"]: r for r in children}
    assert len(children) == 2 and set(by_arm) == {"original", "masked"}
    assert by_arm["original"].data.params["preprocess"] == "none"
    assert by_arm["masked"].data.params["preprocess"] == "mask-background"
    assert by_arm["masked"].data.tags["preprocess.margin"] == "4"
    assert by_arm["masked"].info.run_name.endswith("[masked]")

    table = pd.read_csv(out_dir / "ablation.csv")
    assert set(table["metric"]) >= {"image_auroc_mean", "pixel_auroc", "au_spro_0.05"}
    for row in table.itertuples():
        o = by_arm["original"].data.metrics[row.metric]
        m = by_arm["masked"].data.metrics[row.metric]
        assert row.original == pytest.approx(o) and row.masked == pytest.approx(m)
        assert row.delta == pytest.approx(m - o)
    # the masked images do differ: the background is black in the copy the masked arm read
    assert (table["delta"].abs() > 0).any()

    figure = out_dir / "ablation_pixelstats_flat_connector.png"
    with Image.open(figure) as im:
        assert im.width > 500 and im.height > 500
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {
        "summary/ablation.md",
        "summary/ablation.csv",
        "summary/ablation_pixelstats_flat_connector.png",
        "summary/summary.md",
    } <= logged
    summary = (out_dir / "summary.md").read_text()
    assert "| pixelstats | quick |" in summary
    assert "| pixelstats [mask-background margin=4] | quick |" in summary

    # `orchestrate report` rebuilds the same table from the runs alone
    again = tmp_path / "again"
    code = main(
        ["report", "--experiment", "ablation", "--tracking-uri", uri, "--output-dir", str(again)]
    )
    assert code == 0
    assert "Background-removal ablation" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(again / "ablation.csv"), table)


def test_table_means_over_seeds_and_marks_failures():
    rows = [
        {"method": "a", "category": "c", "seed": 0, "status": "done", "pixel_auroc": 0.6},
        {"method": "a", "category": "c", "seed": 1, "status": "done", "pixel_auroc": 0.8},
        {
            "method": "a",
            "category": "c",
            "seed": 0,
            "status": "done",
            "preprocess": "mask-background margin=8",
            "pixel_auroc": 0.9,
        },
        {"method": "b", "category": "c", "seed": 0, "status": "done", "pixel_auroc": 0.5},
        {
            "method": "b",
            "category": "c",
            "seed": 0,
            "status": "failed",
            "preprocess": "mask-background margin=8",
        },
    ]
    t = ablation_table(rows).set_index("method")
    assert t.loc["a", "original"] == pytest.approx(0.7) and t.loc["a", "n_original"] == 2
    assert t.loc["a", "delta"] == pytest.approx(0.2)
    assert t.loc["b", "masked"] == "FAILED" and pd.isna(t.loc["b", "delta"])


def test_ablation_options_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablation", "background", "--preprocess", "mask-background"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["ablation", "lighting"])
    assert exc.value.code == 2
    assert main(["ablation", "background", "--preprocess-margin", "-1"]) == 2
    assert "--preprocess-margin must be an integer >= 0" in capsys.readouterr().err


def test_help_lists_the_ablation(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "ablation" in capsys.readouterr().out
