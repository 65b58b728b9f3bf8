"""The validation protocol (orchestrator.data.validation) and `orchestrate choose`: labelled
validation images made without the test set, and a setting chosen on them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from orchestrator.cli import main
from orchestrator.data import load_category
from orchestrator.data.validation import (
    protocol_sets,
    split_validation,
    write_validation_category,
)


@pytest.fixture
def category(tiny_synthetic, tmp_path):
    """A private copy of the tiny flat_connector (tests below edit it)."""
    dst = tmp_path / "data" / "flat_connector"
    shutil.copytree(tiny_synthetic / "flat_connector", dst)
    return dst


def test_validation_good_images_are_used_when_present(category):
    cat = load_category(category)
    train, good = split_validation(cat)
    assert [s.image_path for s in train] == [s.image_path for s in cat.train]
    assert [s.image_path for s in good] == [s.image_path for s in cat.validation]


def test_held_out_share_of_train_when_no_validation_folder(category):
    shutil.rmtree(category / "validation")
    cat = load_category(category)
    train, good = split_validation(cat, holdout=0.25, seed=1)
    assert len(good) == 3 and len(train) == len(cat.train) - 3
    assert not {s.image_path for s in train} & {s.image_path for s in good}
    again = split_validation(cat, holdout=0.25, seed=1)[1]
    assert [s.image_path for s in again] == [s.image_path for s in good]  # seeded


def test_written_validation_category(category, tmp_path):
    cat = load_category(category)
    root = write_validation_category(cat, tmp_path / "val", seed=0)
    val = load_category(root)
    n = len(cat.validation)
    test = val.split("test")
    assert len(val.train) == len(cat.train) and len(test) == 3 * n
    assert (test.labels == "good").sum() == n and (test.labels == "structural").sum() == 2 * n
    originals = [np.asarray(Image.open(s.image_path).convert("RGB")) for s in cat.validation]
    anomalous = [s for s in test if s.label == "structural"]
    for k, s in enumerate(anomalous):
        img = s.load_image()
        mask = s.load_mask()
        base = originals[k // 2]  # one cut-paste and one Perlin patch per good image
        assert mask.any() and mask.mean() < 0.5
        assert np.array_equal(img[~mask], base[~mask])  # nothing changes outside the mask
        assert np.abs(img[mask].astype(int) - base[mask]).mean() > 1  # something inside does
        assert s.load_regions(val.defects)[0].defect_name.startswith("synthetic_")
    # seeded: the same files again
    again = write_validation_category(cat, tmp_path / "val2", seed=0)
    for a, b in zip(sorted(root.rglob("*.png")), sorted(again.rglob("*.png")), strict=True):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_cached_validation_set_is_written_once_and_follows_its_inputs(
    category, tmp_path, monkeypatch
):
    """protocol_sets without a folder: the set is written once into the cache, identical to
    a fresh one, reused by the next trial, and rewritten when a training image changes."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    cat = load_category(category)
    _, first = protocol_sets(cat)
    root = first.samples[0].image_path.parents[2]
    fresh = write_validation_category(cat, tmp_path / "fresh", seed=0)
    for a, b in zip(sorted(root.rglob("*.png")), sorted(fresh.rglob("*.png")), strict=True):
        assert a.relative_to(root) == b.relative_to(fresh)
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    stamp = (root / "VALIDATION.txt").stat().st_mtime_ns
    _, second = protocol_sets(cat)
    assert [s.image_path for s in second] == [s.image_path for s in first]
    assert (root / "VALIDATION.txt").stat().st_mtime_ns == stamp  # not written again
    # a training image replaced (same size, new content): a new set from the new images
    img = cat.train[0].image_path
    Image.fromarray(255 - np.asarray(Image.open(img).convert("RGB"))).save(img)
    _, third = protocol_sets(load_category(category))
    assert third.samples[0].image_path.parents[2] != root
    assert len(list((tmp_path / "cache" / "validation").iterdir())) == 2  # no leftovers


def test_choose_never_reads_the_test_set(category, capsys):
    # every test image made unreadable: choosing must still work
    for png in (category / "test").rglob("*.png"):
        png.write_bytes(b"not a png")
    argv = ["choose", "pixelstats", "--param", "grid", "--values", "[[4,4],[16,16]]",
            "--dataset", str(category.parent), "--categories", "flat_connector"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "chosen: grid = [" in out and "validation image_auroc" in out
    assert main([*argv[:3], "gird", *argv[4:]]) == 2
    assert "unknown parameter 'gird'" in capsys.readouterr().err


def test_best_value_breaks_ties_by_pixel_auroc_then_order():
    from orchestrator.selection import best_value

    rows = [
        {"value": 0.3, "category": "a", "image_auroc": 1.0, "pixel_auroc": 0.96},
        {"value": 1.0, "category": "a", "image_auroc": 1.0, "pixel_auroc": 0.97},
        {"value": 3.0, "category": "a", "image_auroc": 0.99, "pixel_auroc": 0.99},
        {"value": 9.0, "category": "a", "image_auroc": float("nan"), "pixel_auroc": 1.0},
    ]
    values = [0.3, 1.0, 3.0, 9.0]
    assert best_value(rows, values, "image_auroc", "pixel_auroc") == 1.0
    assert best_value(rows, values, "image_auroc", None) == 0.3  # ties: the first listed
    assert best_value(rows, values, "pixel_auroc", None) == 9.0
