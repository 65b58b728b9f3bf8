"""Shared fixtures: a tiny generated LOCO-format dataset and a hand-built LOCO category."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.data.synthetic import Counts, generate

TINY_COUNTS = Counts(train=12, validation=4, good=6, logical=6, structural=6)
TINY_SIZE = (96, 128)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """Both synthetic categories, tiny (96x128, 12 train images), generated once per session."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, seed=0, size=TINY_SIZE, counts=TINY_COUNTS)
    return root


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_loco(root: Path, name: str = "widget", size=(40, 60)) -> Path:
    """A hand-built LOCO category: 3 train, 2 validation, 2 good / 1 logical (two masks) /
    1 structural test images, with one absolute and one relative defect."""
    cat = root / name
    h, w = size
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("validation", 2)):
        for i in range(n):
            write_png(
                cat / split / "good" / f"{i:03d}.png", rng.integers(0, 255, (h, w, 3), np.uint8)
            )
    for i in range(2):
        write_png(cat / "test" / "good" / f"{i:03d}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
    write_png(cat / "test" / "logical_anomalies" / "000.png", np.zeros((h, w, 3), np.uint8))
    write_png(cat / "test" / "structural_anomalies" / "000.png", np.zeros((h, w, 3), np.uint8))
    m1 = np.zeros((h, w), np.uint8)
    m1[0:10, 0:10] = 1  # 100 px, absolute threshold 40
    m2 = np.zeros((h, w), np.uint8)
    m2[20:30, 20:40] = 2  # 200 px, relative 0.5 -> 100
    write_png(cat / "ground_truth" / "logical_anomalies" / "000" / "000.png", m1)
    write_png(cat / "ground_truth" / "logical_anomalies" / "000" / "001.png", m2)
    m3 = np.zeros((h, w), np.uint8)
    m3[5:15, 30:35] = 2
    write_png(cat / "ground_truth" / "structural_anomalies" / "000" / "000.png", m3)
    cfg = [
        {
            "defect_name": "missing",
            "pixel_value": 1,
            "saturation_threshold": 40,
            "relative_saturation": False,
        },
        {
            "defect_name": "scratch",
            "pixel_value": 2,
            "saturation_threshold": 0.5,
            "relative_saturation": True,
        },
    ]
    (cat / "defects_config.json").write_text(json.dumps(cfg))
    return cat


@pytest.fixture
def hand_loco(tmp_path) -> Path:
    return make_loco(tmp_path)
