import json

import numpy as np
import pytest
import tifffile

from adapters.base import Predictions
from orchestrator.cli import main
from orchestrator.data import load_category
from orchestrator.metrics import evaluate, f1_max, image_auroc_by_type


def test_image_auroc_split_by_type_by_hand():
    scores = np.array([0.1, 0.2, 0.9, 0.15, 0.8, 0.05])
    labels = np.array(["good", "good", "logical", "logical", "structural", "structural"])
    out = image_auroc_by_type(scores, labels)
    assert out["image_auroc_logical"] == pytest.approx(0.75)  # 0.9 > both, 0.15 > 0.1 only
    assert out["image_auroc_structural"] == pytest.approx(0.5)
    assert out["image_auroc_mean"] == pytest.approx(0.625)
    assert out["image_auroc"] == pytest.approx(5 / 8)


def test_f1_max_by_hand():
    f1, thr = f1_max(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
    assert f1 == pytest.approx(0.8) and thr == pytest.approx(0.35)


def _oracle(test, noise=0.0, seed=0):
    masks = test.load_masks()
    rng = np.random.default_rng(seed)
    maps = masks.astype(np.float32) + noise * rng.random(masks.shape).astype(np.float32)
    return Predictions(maps.reshape(len(maps), -1).max(axis=1), maps)


def test_evaluate_on_hand_built_loco(hand_loco):
    test = load_category(hand_loco).split("test")
    out = evaluate(test, _oracle(test))
    assert out["pixel_auroc"] == pytest.approx(1.0)
    assert out["au_spro_0.05"] == pytest.approx(1.0)
    assert out["au_spro_logical_0.3"] == pytest.approx(1.0)
    noisy = evaluate(test, _oracle(test, noise=1.5))
    assert 0.5 < noisy["pixel_auroc"] < 1.0 and noisy["au_spro_0.05"] < 1.0


def test_cli_evaluate_reads_tiff_and_writes_official_json(hand_loco, tmp_path, capsys):
    cat = load_category(hand_loco)
    test = cat.split("test")
    preds = _oracle(test, noise=0.5)
    for s, m in zip(test, preds.anomaly_maps):
        path = tmp_path / "maps" / cat.name / "test" / s.subset / f"{s.image_id}.tiff"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, m)
    rc = main(
        [
            "evaluate",
            "--dataset-root",
            str(hand_loco.parent),
            "--category",
            cat.name,
            "--maps",
            str(tmp_path / "maps"),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected = evaluate(test, preds)
    assert got["localization"]["auc_spro"]["mean"]["0.05"] == pytest.approx(
        expected["au_spro_0.05"]
    )
    assert got["classification"]["auc_roc"]["logical_anomalies"] == pytest.approx(
        expected["image_auroc_logical"]
    )
    assert "au_spro_0.05" in capsys.readouterr().out


def test_cli_evaluate_lists_missing_and_mis_sized_maps(hand_loco, tmp_path, capsys):
    cat = load_category(hand_loco)
    d = tmp_path / "maps" / cat.name / "test" / "good"
    d.mkdir(parents=True)
    np.save(d / "000.npy", np.zeros((10, 10), np.float32))
    rc = main(
        [
            "evaluate",
            "--dataset-root",
            str(hand_loco.parent),
            "--category",
            cat.name,
            "--maps",
            str(tmp_path / "maps"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "wrong size" in err and "000.npy is 10x10, image is 60x40" in err
    assert "missing" in err and "structural_anomalies/000.tiff" in err
