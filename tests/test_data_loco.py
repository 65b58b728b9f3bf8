import numpy as np
import pytest

from orchestrator.data import fingerprint, load_category, load_dataset
from orchestrator.data.synthetic import Counts, generate
from orchestrator.errors import UserError
from tests.conftest import TINY_COUNTS, TINY_SIZE


def test_hand_built_loco_two_masks_merged_and_thresholds_resolved(hand_loco):
    cat = load_category(hand_loco)
    assert cat.format == "loco"
    assert (len(cat.train), len(cat.validation), len(cat.test)) == (3, 2, 4)
    test = cat.split("test")
    assert list(test.labels) == ["good", "good", "logical", "structural"]
    logical = test[2]
    assert len(logical.mask_paths) == 2
    merged = logical.load_mask()
    assert merged.dtype == bool and merged.sum() == 100 + 200
    regions = logical.load_regions(cat.defects)
    assert [r.defect_name for r in regions] == ["missing", "scratch"]
    assert [r.area for r in regions] == [100, 200]
    assert [r.saturation for r in regions] == [40, 100]  # absolute min(40,100); int(0.5*200)
    masks = test.load_masks()
    assert masks.shape == (4, 40, 60) and masks[:2].sum() == 0


def test_regions_resized_scale_absolute_threshold(hand_loco):
    cat = load_category(hand_loco)
    test = cat.split("test", eval_size=(20, 30))  # a quarter of the area
    regions = test.load_regions()[2]
    assert [r.mask.shape for r in regions] == [(20, 30), (20, 30)]
    assert regions[0].area == 25 and regions[0].saturation == 10  # 40 * 1/4
    assert regions[1].saturation == int(0.5 * regions[1].area)


def test_generated_category_counts_labels_masks(tiny_synthetic):
    for name in ("flat_connector", "pushpins"):
        cat = load_category(tiny_synthetic / name)
        assert cat.image_size == TINY_SIZE
        assert len(cat.train) == TINY_COUNTS.train
        assert len(cat.validation) == TINY_COUNTS.validation
        labels = [s.label for s in cat.test]
        assert labels.count("good") == TINY_COUNTS.good
        assert labels.count("logical") == TINY_COUNTS.logical
        assert labels.count("structural") == TINY_COUNTS.structural
        test = cat.split("test")
        masks = test.load_masks()
        anomalous = test.is_anomalous
        assert masks[~anomalous].sum() == 0
        assert all(m.any() for m in masks[anomalous])
        for regions in test.load_regions():
            for r in regions:
                assert r.defect_id in cat.defects and 0 < r.saturation <= r.area


def test_synthetic_uses_absolute_and_relative_saturation(tiny_synthetic):
    cat = load_category(tiny_synthetic / "pushpins")
    kinds = {s.name: s.relative_saturation for s in cat.defects.values()}
    assert kinds["missing_pin"] is False and kinds["extra_pin"] is True
    # a missing pin's region is the whole compartment, saturated by one pin's area
    test = cat.split("test")
    missing = [r for regs in test.load_regions() for r in regs if r.defect_name == "missing_pin"]
    assert missing and all(r.saturation < r.area for r in missing)


def test_generation_deterministic_per_seed(tmp_path):
    small = Counts(train=2, validation=1, good=1, logical=2, structural=2)
    a = generate(tmp_path / "a", ["pushpins"], seed=3, size=(64, 80), counts=small)[0]
    b = generate(tmp_path / "b", ["pushpins"], seed=3, size=(64, 80), counts=small)[0]
    c = generate(tmp_path / "c", ["pushpins"], seed=4, size=(64, 80), counts=small)[0]
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files if (c / f).exists())
    assert fingerprint(load_category(a)) == fingerprint(load_category(b))


def test_fingerprint_changes_with_files(hand_loco):
    before = fingerprint(load_category(hand_loco))
    assert before == fingerprint(load_category(hand_loco))
    (hand_loco / "train" / "good" / "000.png").unlink()
    assert fingerprint(load_category(hand_loco)) != before


def test_custom_root_and_category_selection(hand_loco):
    cats = load_dataset("custom", root=hand_loco.parent, categories=["widget"])
    assert [c.name for c in cats] == ["widget"]
    with pytest.raises(UserError, match="unknown categories nope"):
        load_dataset("loco", root=hand_loco.parent, categories=["nope"])


def test_loco_without_data_explains_download(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(tmp_path))
    with pytest.raises(UserError, match="mvtec-loco") as err:
        load_dataset("loco")
    assert "mvtec_loco_anomaly_detection" in str(err.value)


def test_sample_set_images_resized(tiny_synthetic):
    cat = load_category(tiny_synthetic / "flat_connector")
    imgs = cat.split("train")[:3].load_images((32, 48))
    assert imgs.shape == (3, 32, 48, 3) and imgs.dtype == np.uint8
