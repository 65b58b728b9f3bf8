"""Image metrics by hand, and ``evaluate`` end to end on hand-built LOCO / MVTec AD folders."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from adapters.base import Predictions
from orchestrator.data import load_category
from orchestrator.metrics import FPR_LIMITS, evaluate, f1_max, image_auroc_by_type
from tests.conftest import write_png


def test_image_auroc_split_by_type_by_hand():
    scores = np.array([0.1, 0.2, 0.9, 0.15, 0.8, 0.05])
    labels = np.array(["good", "good", "logical", "logical", "structural", "structural"])
    out = image_auroc_by_type(scores, labels)
    assert out["image_auroc_logical"] == pytest.approx(0.75)  # 0.9 > both, 0.15 > 0.1 only
    assert out["image_auroc_structural"] == pytest.approx(0.5)
    assert out["image_auroc_mean"] == pytest.approx(0.625)
    assert out["image_auroc"] == pytest.approx(5 / 8)
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels != "good", scores))


def test_image_auroc_absent_types_leave_keys_out():
    out = image_auroc_by_type(np.array([0.1, 0.9]), np.array(["good", "anomaly"]))
    assert out == {"image_auroc": 1.0}
    out = image_auroc_by_type(
        np.array([0.1, 0.9, 0.0]), np.array(["good", "structural"] * 1 + ["good"])
    )
    assert "image_auroc_logical" not in out
    assert out["image_auroc_mean"] == out["image_auroc_structural"] == 1.0


def test_f1_max_by_hand():
    f1, thr = f1_max(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool))
    assert f1 == pytest.approx(0.8) and thr == pytest.approx(0.35)


def _oracle(test, noise=0.0, seed=0):
    masks = test.load_masks()
    rng = np.random.default_rng(seed)
    maps = masks.astype(np.float32) + noise * rng.random(masks.shape).astype(np.float32)
    return Predictions(maps.reshape(len(maps), -1).max(axis=1), maps, [s.key for s in test])


def hand_maps(test) -> np.ndarray:
    """Maps for tests/conftest.make_loco with metrics known by hand.

    Normal pixels 0.5. Logical image: region 1 (100 px, absolute saturation 40) has 40 px at
    1.0; region 2 (200 px, relative 0.5 -> 100) has 50 px at 1.0; structural region (50 px,
    relative 0.5 -> 25) has 10 px at 1.0; every other region pixel 0.0.
    """
    maps = np.full((len(test), *test.eval_size), 0.5, np.float32)
    masks = test.load_masks()
    for i, s in enumerate(test):
        maps[i][masks[i]] = 0.0
        if s.label == "logical":
            maps[i][0:4, 0:10] = 1.0  # 40 px of region 1
            maps[i][20:22, 20:40] = 1.0  # 40 px of region 2
            maps[i][22, 20:30] = 1.0  # + 10 px = 50
        elif s.label == "structural":
            maps[i][5:7, 30:35] = 1.0  # 10 px
    return maps


def test_evaluate_by_hand_on_hand_built_loco(hand_loco):
    test = load_category(hand_loco).split("test")
    maps = hand_maps(test)
    out = evaluate(test, Predictions(maps.reshape(len(maps), -1).max(axis=1), maps))
    for lim in FPR_LIMITS:
        # logical: (40/40 + 50/100) / 2 = 0.75 from FPR 0 on; structural: 10/25 = 0.4
        assert out[f"au_spro_logical_{lim}"] == pytest.approx(0.75), lim
        assert out[f"au_spro_structural_{lim}"] == pytest.approx(0.4), lim
        assert out[f"au_spro_{lim}"] == pytest.approx(0.575), lim
    # PRO: components 40/100, 50/200, 10/50 -> mean 0.85 / 3
    assert out["au_pro"] == pytest.approx(0.85 / 3)
    # pixel AUROC: 100 region pixels above every normal one, 250 below: 100 / 350
    assert out["pixel_auroc"] == pytest.approx(2 / 7)
    assert out["image_auroc_mean"] == out["image_auroc"] == 1.0


def test_evaluate_oracle_and_noise(hand_loco):
    test = load_category(hand_loco).split("test")
    out = evaluate(test, _oracle(test))
    assert out["pixel_auroc"] == pytest.approx(1.0)
    assert out["au_spro_0.05"] == pytest.approx(1.0)
    assert out["au_spro_logical_0.3"] == pytest.approx(1.0)
    # noise 1.5: region pixels 1 + U * 1.5, normal pixels U * 1.5 <= 1.5; saturation is at most
    # half of each region, whose top half scores above ~1.75: every region saturates first
    noisy = evaluate(test, _oracle(test, noise=1.5))
    assert 0.5 < noisy["pixel_auroc"] < 1.0 and noisy["au_spro_0.05"] == pytest.approx(1.0)
    noisier = evaluate(test, _oracle(test, noise=4.0))
    assert noisier["au_spro_0.05"] < 0.9 and noisier["pixel_auroc"] < noisy["pixel_auroc"]


def test_evaluate_rejects_mismatched_predictions(hand_loco):
    test = load_category(hand_loco).split("test")
    preds = _oracle(test)
    with pytest.raises(ValueError, match="order"):
        evaluate(test, Predictions(preds.image_scores, preds.anomaly_maps, preds.keys[::-1]))
    with pytest.raises(ValueError, match="evaluation size"):
        evaluate(test, Predictions(preds.image_scores, preds.anomaly_maps[:, :20]))


def test_evaluate_mvtec_ad_has_no_spro(tmp_path):
    cat = tmp_path / "bottle"
    rng = np.random.default_rng(0)
    write_png(cat / "train" / "good" / "000.png", rng.integers(0, 255, (16, 16, 3), np.uint8))
    for i in range(2):
        write_png(cat / "test" / "good" / f"00{i}.png", np.zeros((16, 16, 3), np.uint8))
    write_png(cat / "test" / "crack" / "000.png", np.zeros((16, 16, 3), np.uint8))
    m = np.zeros((16, 16), np.uint8)
    m[2:6, 2:6] = 255
    write_png(cat / "ground_truth" / "crack" / "000_mask.png", m)
    test = load_category(cat).split("test")
    maps = test.load_masks().astype(np.float32)
    out = evaluate(test, Predictions(maps.max(axis=(1, 2)), maps))
    assert out["image_auroc"] == out["pixel_auroc"] == out["au_pro"] == 1.0
    assert not any(k.startswith("au_spro") for k in out)
    assert "image_auroc_logical" not in out and "image_auroc_mean" not in out


def test_evaluate_rejects_nan_maps(hand_loco):
    test = load_category(hand_loco).split("test")
    preds = _oracle(test)
    preds.anomaly_maps[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        evaluate(test, preds)
