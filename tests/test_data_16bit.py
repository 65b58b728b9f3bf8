"""16-bit images (common from industrial cameras) are read by their range, not clipped white:
a 16-bit copy of a category scores like its 8-bit original."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from adapters.pixelstats import PixelStats
from orchestrator.data import load_category
from orchestrator.data.types import read_rgb


def _copy(src, dst, bits: int) -> None:
    shutil.copytree(src, dst)
    for png in (dst / "train").rglob("*.png"):
        _write(png, bits)
    for png in (dst / "validation").rglob("*.png"):
        _write(png, bits)
    for png in (dst / "test").rglob("*.png"):
        _write(png, bits)


def _write(png, bits: int) -> None:
    gray = np.asarray(Image.open(png).convert("L"))
    if bits == 16:
        Image.fromarray(gray.astype(np.uint16) * 257).save(png)  # full 16-bit range
    else:
        Image.fromarray(gray).save(png)


def test_16bit_category_scores_like_its_8bit_original(tiny_synthetic, tmp_path):
    src = tiny_synthetic / "pushpins"
    _copy(src, tmp_path / "8" / "pushpins", 8)
    _copy(src, tmp_path / "16" / "pushpins", 16)
    one = next((tmp_path / "16" / "pushpins" / "test" / "good").glob("*.png"))
    assert Image.open(one).mode.startswith("I")  # really a 16-bit file
    img = read_rgb(one)
    assert img.dtype == np.uint8 and 0 < img.mean() < 250  # not clipped to white
    scores = {}
    for bits in ("8", "16"):
        cat = load_category(tmp_path / bits / "pushpins")
        model = PixelStats({"grid": [16, 16]}).fit(cat.split("train"))
        scores[bits] = model.predict(cat.split("test")).image_scores
    np.testing.assert_array_equal(scores["8"], scores["16"])


def test_float_and_32bit_images_are_scaled():
    from orchestrator.data.types import _to_8bit_rgb

    f = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), mode="F")
    out = np.asarray(_to_8bit_rgb(f))
    assert out.shape == (8, 8, 3) and out.max() == 255 and out.min() == 0
    i32 = Image.fromarray((np.arange(64, dtype=np.int32) * 1000).reshape(8, 8))
    out = np.asarray(_to_8bit_rgb(i32))
    assert out.max() == round(63000 * 255 / 65535) and out.min() == 0
