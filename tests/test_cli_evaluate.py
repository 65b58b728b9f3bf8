"""``orchestrate evaluate``: official layout in, official metrics.json out, clear errors."""

import json

import numpy as np
import pytest
import tifffile

from adapters.base import Predictions
from orchestrator.cli import main
from orchestrator.data import load_category
from orchestrator.metrics import evaluate
from tests.test_metrics_evaluate import hand_maps


def _write_maps(root, cat, test, maps, ext=".tiff"):
    for s, m in zip(test, maps):
        path = root / cat.name / "test" / s.subset / f"{s.image_id}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if ext == ".npy":
            np.save(path, m)
        else:
            tifffile.imwrite(path, m)


def _run(hand_loco, maps_dir, out=None):
    argv = ["evaluate", "--dataset-root", str(hand_loco.parent), "--category", hand_loco.name]
    argv += ["--maps", str(maps_dir)]
    if out is not None:
        argv += ["--output-dir", str(out)]
    return main(argv)


@pytest.mark.parametrize("ext", [".tiff", ".npy"])
def test_cli_evaluate_writes_official_json(hand_loco, tmp_path, capsys, ext):
    cat = load_category(hand_loco)
    test = cat.split("test")
    maps = hand_maps(test)
    _write_maps(tmp_path / "maps", cat, test, maps, ext)
    assert _run(hand_loco, tmp_path / "maps", tmp_path / "out") == 0
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    spro = got["localization"]["auc_spro"]
    assert set(spro) == {"logical_anomalies", "structural_anomalies", "mean"}
    assert set(spro["mean"]) == {"0.01", "0.05", "0.1", "0.3", "1.0"}
    assert spro["logical_anomalies"]["0.05"] == pytest.approx(0.75)  # by hand, see hand_maps
    assert spro["structural_anomalies"]["1.0"] == pytest.approx(0.4)
    assert spro["mean"]["0.05"] == pytest.approx(0.575)
    auc = got["classification"]["auc_roc"]
    assert auc == {"logical_anomalies": 1.0, "structural_anomalies": 1.0, "mean": 1.0}
    expected = evaluate(test, Predictions(maps.max(axis=(1, 2)), maps))
    assert got["additional"]["pixel_auroc"] == pytest.approx(expected["pixel_auroc"])
    out = capsys.readouterr().out
    assert "sPRO@0.05" in out and "0.5750" in out and "metrics.json" in out


def test_cli_evaluate_lists_missing_and_mis_sized_maps(hand_loco, tmp_path, capsys):
    cat = load_category(hand_loco)
    d = tmp_path / "maps" / cat.name / "test" / "good"
    d.mkdir(parents=True)
    np.save(d / "000.npy", np.zeros((10, 10), np.float32))
    assert _run(hand_loco, tmp_path / "maps") == 2
    err = capsys.readouterr().err
    assert "error: 4 of 4 anomaly maps missing or unusable" in err
    assert "wrong size" in err and "000.npy is 10x10, image is 60x40" in err
    assert "missing" in err and "structural_anomalies/000.tiff" in err
    assert "Traceback" not in err


def test_cli_evaluate_bad_folders(hand_loco, tmp_path, capsys):
    assert _run(hand_loco, tmp_path / "nowhere") == 2
    assert "no such folder" in capsys.readouterr().err
    rc = main(
        ["evaluate", "--dataset-root", str(tmp_path), "--category", "nope", "--maps", str(tmp_path)]
    )
    assert rc == 2 and "error:" in capsys.readouterr().err
