import numpy as np
import pytest

from orchestrator.data import fingerprint, load_category, load_dataset
from orchestrator.errors import UserError
from tests.conftest import write_png


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


def test_empty_train_set_is_a_user_error(hand_loco):
    for p in (hand_loco / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(UserError, match="no training images.*datasets check"):
        load_category(hand_loco)


def test_merged_mask_tolerates_a_mask_at_another_size(hand_loco):
    """The validator flags it; loading still works (mask aligned to its image)."""
    m = np.zeros((20, 30), np.uint8)
    m[0:5, 0:5] = 2
    write_png(hand_loco / "ground_truth" / "structural_anomalies" / "000" / "000.png", m)
    sample = load_category(hand_loco).test[3]
    mask = sample.load_mask()
    assert mask.shape == (40, 60) and mask.sum() == 100  # 5x5 at half size -> 10x10


def test_loco_layout_detected_without_config(hand_loco):
    (hand_loco / "defects_config.json").unlink()
    cat = load_category(hand_loco)
    assert cat.format == "loco" and cat.defects == {}
    regions = cat.split("test").load_regions()[2]
    assert [r.saturation for r in regions] == [r.area for r in regions]  # unknown id: full area
