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


def _maps_with_one_replaced(hand_loco, tmp_path):
    """Good .tiff maps for every test image; returns (maps dir, first map's path, its map)."""
    cat = load_category(hand_loco)
    test = cat.split("test")
    maps = hand_maps(test)
    _write_maps(tmp_path / "maps", cat, test, maps)
    first = tmp_path / "maps" / cat.name / "test" / test[0].subset / f"{test[0].image_id}.tiff"
    return tmp_path / "maps", first, maps[0]


def _refused(hand_loco, maps_dir, capsys, *words, n=1):
    assert _run(hand_loco, maps_dir, maps_dir.parent / "out") == 2
    err = capsys.readouterr().err
    assert f"error: {n} of 4 anomaly maps missing or unusable" in err
    for w in words:
        assert w in err
    assert "Traceback" not in err
    assert not (maps_dir.parent / "out" / "metrics.json").exists()
    return err


@pytest.mark.parametrize("kind", ["str", "object"])
def test_cli_evaluate_refuses_non_numeric_maps(hand_loco, tmp_path, capsys, kind):
    maps_dir, first, m = _maps_with_one_replaced(hand_loco, tmp_path)
    first.unlink()
    bad = np.array([["a"] * m.shape[1]] * m.shape[0])
    np.save(first.with_suffix(".npy"), bad if kind == "str" else bad.astype(object))
    _refused(hand_loco, maps_dir, capsys, "not numeric", f"{first.with_suffix('.npy')} has dtype")


def test_cli_evaluate_refuses_values_beyond_float32(hand_loco, tmp_path, capsys):
    maps_dir, first, m = _maps_with_one_replaced(hand_loco, tmp_path)
    first.unlink()
    big = m.astype(np.float64)
    big[0, 0] = 1e300  # would turn into inf when stored as float32
    np.save(first.with_suffix(".npy"), big)
    err = _refused(hand_loco, maps_dir, capsys, "values beyond float32 range", "1e+300")
    assert str(first.with_suffix(".npy")) in err


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_cli_evaluate_refuses_complex_maps(hand_loco, tmp_path, capsys, dtype):
    maps_dir, first, m = _maps_with_one_replaced(hand_loco, tmp_path)
    first.unlink()
    np.save(first.with_suffix(".npy"), m.astype(dtype) + 1j)
    err = _refused(hand_loco, maps_dir, capsys, "complex values", np.dtype(dtype).name)
    assert str(first.with_suffix(".npy")) in err


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_cli_evaluate_lists_corrupt_tiff_with_other_problems(hand_loco, tmp_path, capsys, how):
    maps_dir, first, _ = _maps_with_one_replaced(hand_loco, tmp_path)
    if how == "garbage":
        first.write_bytes(b"II*\x00" + b"\x13\x37garbage" * 50)  # TIFF header, then junk
    else:
        first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    missing = next(p for p in maps_dir.rglob("*.tiff") if p != first)
    missing.unlink()  # a second problem: both must be listed
    err = _refused(hand_loco, maps_dir, capsys, f"cannot read anomaly map {first}: ", n=2)
    assert f"missing: {missing}" in err
    assert "wrong size" not in err


@pytest.mark.parametrize("other", [".npy", ".tif"])
def test_cli_evaluate_refuses_two_maps_for_one_image(hand_loco, tmp_path, capsys, other):
    maps_dir, first, m = _maps_with_one_replaced(hand_loco, tmp_path)
    twin = first.with_suffix(other)
    np.save(twin, m) if other == ".npy" else tifffile.imwrite(twin, m)
    _refused(hand_loco, maps_dir, capsys, f"ambiguous: both {first} and {twin} exist; keep one")


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float64, np.float16])
def test_cli_evaluate_accepts_bool_integer_and_float_maps(hand_loco, tmp_path, capsys, dtype):
    cat = load_category(hand_loco)
    test = cat.split("test")
    maps = hand_maps(test)  # values 0, 0.5, 1: exact in every dtype once doubled
    typed = maps == 1.0 if dtype is bool else (maps * 2).astype(dtype)
    _write_maps(tmp_path / "maps", cat, test, typed, ".npy")
    assert _run(hand_loco, tmp_path / "maps", tmp_path / "out") == 0
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert got["classification"]["auc_roc"]["mean"] == 1.0
    if dtype is not bool:  # a bool map can't tell region pixels (0) from normal (0.5)
        assert got["localization"]["auc_spro"]["mean"]["0.05"] == pytest.approx(0.575)
    assert "Traceback" not in capsys.readouterr().err


def test_cli_evaluate_category_without_test_folder(hand_loco, tmp_path, capsys):
    import shutil

    shutil.rmtree(hand_loco / "test")
    assert _run(hand_loco, tmp_path / "maps") == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {hand_loco}: no test images"
