"""The validator on malformed folders: each problem named with its file, one per line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.data.validate import validate
from tests.conftest import make_loco, write_png


def _break_missing_split(cat):
    shutil.rmtree(cat / "validation")
    return "validation", "missing split folder"


def _break_missing_test_subset(cat):
    shutil.rmtree(cat / "test" / "structural_anomalies")
    shutil.rmtree(cat / "ground_truth" / "structural_anomalies")
    return "structural_anomalies", "missing test split folder"


def _break_mask_without_image(cat):
    (cat / "test" / "structural_anomalies" / "000.png").unlink()
    return "ground_truth/structural_anomalies/000", "mask without image"


def _break_image_without_masks(cat):
    write_png(cat / "test" / "logical_anomalies" / "001.png", np.zeros((40, 60, 3), np.uint8))
    return "logical_anomalies/001.png", "image without masks"


def _break_mask_size(cat):
    write_png(
        cat / "ground_truth" / "structural_anomalies" / "000" / "000.png",
        np.full((20, 20), 2, np.uint8),
    )
    return "structural_anomalies/000/000.png", "mask size 20x20 differs from its image 60x40"


def _break_pixel_value(cat):
    m = np.zeros((40, 60), np.uint8)
    m[1:3, 1:3] = 7
    write_png(cat / "ground_truth" / "logical_anomalies" / "000" / "001.png", m)
    return "logical_anomalies/000/001.png", "pixel value 7 absent from defects_config.json"


def _break_unreadable(cat):
    (cat / "train" / "good" / "001.png").write_bytes(b"not a png at all")
    return "train/good/001.png", "unreadable image"


def _break_empty_train(cat):
    for p in (cat / "train" / "good").iterdir():
        p.unlink()
    return "train/good", "empty train set"


def _break_missing_config(cat):
    (cat / "defects_config.json").unlink()
    return "defects_config.json", "missing defects_config.json"


def _break_malformed_config(cat):
    (cat / "defects_config.json").write_text(json.dumps([{"defect_name": "x", "pixel_value": 1}]))
    return "defects_config.json", "lacks relative_saturation, saturation_threshold"


def _break_empty_mask(cat):
    write_png(
        cat / "ground_truth" / "structural_anomalies" / "000" / "000.png",
        np.zeros((40, 60), np.uint8),
    )
    return "structural_anomalies/000/000.png", "empty mask"


def _break_unexpected_folder(cat):
    (cat / "test" / "logical").mkdir()
    return "test/logical", "unexpected folder"


def _break_duplicate_pixel_value(cat):
    cfg = json.loads((cat / "defects_config.json").read_text())
    cfg[1]["pixel_value"] = 1
    (cat / "defects_config.json").write_text(json.dumps(cfg))
    return "defects_config.json", "pixel value 1 listed twice"


def _break_relative_threshold(cat):
    cfg = json.loads((cat / "defects_config.json").read_text())
    cfg[1]["saturation_threshold"] = 50
    (cat / "defects_config.json").write_text(json.dumps(cfg))
    return "defects_config.json", "relative saturation_threshold 50.0 outside (0, 1]"


BREAKERS = [
    _break_unexpected_folder,
    _break_duplicate_pixel_value,
    _break_relative_threshold,
    _break_missing_split,
    _break_missing_test_subset,
    _break_mask_without_image,
    _break_image_without_masks,
    _break_mask_size,
    _break_pixel_value,
    _break_unreadable,
    _break_empty_train,
    _break_missing_config,
    _break_malformed_config,
    _break_empty_mask,
]


def test_clean_folder_has_no_problems(hand_loco):
    assert validate(hand_loco) == []
    assert validate(hand_loco.parent) == []  # dataset root form


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__.removeprefix("_break_"))
def test_each_problem_is_reported_with_its_file(tmp_path, breaker):
    cat = make_loco(tmp_path)
    where, message = breaker(cat)
    lines = [str(p) for p in validate(cat)]
    hits = [line for line in lines if where in line and message in line]
    assert hits, f"expected a line naming {where!r} with {message!r}, got {lines}"


def test_all_problems_listed_at_once(tmp_path):
    cat = make_loco(tmp_path)
    _break_unreadable(cat)
    _break_pixel_value(cat)
    _break_mask_without_image(cat)
    assert len(validate(cat)) == 3


def test_cli_exit_codes_and_no_traceback(tmp_path, capsys):
    cat = make_loco(tmp_path)
    assert main(["datasets", "check", str(cat)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    _break_unreadable(cat)
    _break_mask_size(cat)
    assert main(["datasets", "check", str(cat)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all(str(cat) in line for line in out)


def test_cli_subprocess_missing_folder_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "datasets", "check", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "no such folder" in proc.stdout and "Traceback" not in proc.stderr


def test_mvtec_problems(tmp_path):
    cat = tmp_path / "bottle"
    write_png(cat / "train" / "good" / "000.png", np.zeros((16, 16, 3), np.uint8))
    write_png(cat / "test" / "crack" / "000.png", np.zeros((16, 16, 3), np.uint8))
    write_png(cat / "ground_truth" / "crack" / "001_mask.png", np.zeros((16, 16), np.uint8))
    lines = [str(p) for p in validate(cat)]
    assert any("crack/000.png" in x and "image without masks" in x for x in lines)
    assert any("001_mask.png" in x and "mask without image" in x for x in lines)
