"""DRAEM adapter: synthesis pieces, networks/losses, the contract (native), upstream parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from adapters.conformance import make_tiny_category
from adapters.draem import DRAEM, native, networks
from adapters.draem.perlin import perlin_mask, perlin_noise
from adapters.draem.textures import (
    load_texture_dir,
    procedural_textures,
    random_colour_augment,
)
from orchestrator.errors import UserError
from tests.upstream import need_checkout

#: Tiny settings: 32 px, 8-channel networks, 2 epochs x 50 optimiser steps (batch 8),
#: lr 3e-4 (DRAEM needs ~100 steps to separate the conformance kit's bright squares).
TINY = {
    "image_size": 32,
    "base_width": 8,
    "disc_base_width": 8,
    "batch_size": 8,
    "epochs": 2,
    "iterations_per_epoch": 50,
    "lr": 3e-4,
    "score_kernel": 5,
    "seed": 0,
}


# --- Perlin noise and textures ---------------------------------------------------------------
def test_perlin_noise_is_smooth_bounded_and_seeded():
    a = perlin_noise((64, 48), (4, 2), np.random.default_rng(1))
    b = perlin_noise((64, 48), (4, 2), np.random.default_rng(1))
    assert a.shape == (64, 48) and np.array_equal(a, b)
    assert np.abs(a).max() <= np.sqrt(2) + 1e-9 and a.std() > 0.05
    # gradient noise is continuous: neighbouring pixels differ far less than the value range
    assert np.abs(np.diff(a, axis=0)).max() < 0.25 * (a.max() - a.min())
    # zero at lattice corners (offset 0 from the corner)
    assert abs(a[0, 0]) < 1e-9 and abs(a[16, 24]) < 1e-9


def test_perlin_mask_is_binary_blobs():
    rng = np.random.default_rng(0)
    masks = [perlin_mask((32, 32), rng) for _ in range(20)]
    assert all(m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    fractions = [m.mean() for m in masks]
    assert max(fractions) > 0.02 and min(fractions) < 0.5  # some anomalies, never everything


def test_procedural_textures_are_varied():
    tex = procedural_textures(14, (24, 40), seed=0)
    assert len(tex) == 14 and all(t.shape == (24, 40, 3) and t.dtype == np.uint8 for t in tex)
    assert all(t.std() > 1 for t in tex)
    means = {round(float(t.mean()), 1) for t in tex}
    assert len(means) > 10
    assert np.array_equal(tex[3], procedural_textures(14, (24, 40), seed=0)[3])


def test_texture_dir_is_read_recursively_and_resized(tmp_path):
    for i, sub in enumerate(["banded", "dotted"]):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.full((50, 70, 3), 40 * (i + 1), np.uint8)).save(tmp_path / sub / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    out = load_texture_dir(tmp_path, (32, 16))
    assert len(out) == 2 and out[0].shape == (32, 16, 3)
    adapter = DRAEM(TINY | {"texture_dir": str(tmp_path)})
    assert len(adapter.engine.textures()) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .jpg"):
        load_texture_dir(tmp_path / "empty", (8, 8))
    with pytest.raises(UserError, match="not a folder"):
        load_texture_dir(tmp_path / "missing", (8, 8))


def test_colour_augment_keeps_shape_and_changes_pixels():
    tex = procedural_textures(1, (16, 16))[0]
    rng = np.random.default_rng(0)
    outs = [random_colour_augment(tex, rng) for _ in range(5)]
    assert all(o.shape == tex.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, tex) for o in outs)


def test_synthesis_blends_texture_inside_mask_only():
    rng = np.random.default_rng(3)
    image = np.full((32, 32, 3), 0.5, np.float32)
    tex = [np.zeros((32, 32, 3), np.uint8)]
    synth = native.AnomalySynthesizer(tex, rng, anomaly_prob=1.0, rotate_prob=0.0)
    for _ in range(10):
        normal, aug, mask = synth(image)
        assert mask.shape == (32, 32, 1) and set(np.unique(mask)) <= {0.0, 1.0}
        outside = mask[..., 0] == 0
        assert np.allclose(aug[outside], image[outside]) and np.allclose(normal, image)
        if mask.sum() > 0:
            inside = ~outside
            # aug = (1 - beta) * texture + beta * image, beta < 0.8 -> differs from the image
            assert not np.allclose(aug[inside], image[inside])
    none = native.AnomalySynthesizer(tex, rng, anomaly_prob=0.0, rotate_prob=0.0)
    _, aug, mask = none(image)
    assert mask.sum() == 0 and np.array_equal(aug, image)


# --- networks and losses ----------------------------------------------------------------------
def test_networks_shapes_and_decoder_features():
    r, d = networks.Reconstructive(3, 3, 4), networks.Discriminative(6, 2, 4)
    x = torch.rand(2, 3, 64, 96)
    assert r(x).shape == x.shape
    joined = torch.cat([r(x), x], 1)
    assert d(joined).shape == (2, 2, 64, 96)
    assert d.decode(joined).shape == (2, 4, 64, 96)


def test_losses():
    x = torch.rand(2, 3, 32, 32)
    assert networks.ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert networks.ssim_loss(x, torch.rand_like(x)).item() > 0.5
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    perfect = torch.cat([1 - mask, mask], 1)
    wrong = torch.cat([mask, 1 - mask], 1)
    assert networks.focal_loss(perfect, mask).item() < 1e-3
    assert networks.focal_loss(wrong, mask).item() > 5


def test_image_size_must_be_multiple_of_32():
    with pytest.raises(UserError, match="multiple of 32"):
        DRAEM(TINY | {"image_size": [48, 64]})


# --- the contract -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An adapter with (untrained) networks, and the conformance category."""
    cat = make_tiny_category(tmp_path_factory.mktemp("draem"))
    adapter = DRAEM(TINY)
    adapter.engine.build()
    adapter.fitted = True
    return adapter, cat


def test_image_score_is_max_of_box_filtered_map(built):
    adapter, cat = built
    test = cat.split("test", eval_size=(32, 32))  # = image_size: maps are not resized
    preds = adapter.predict(test)
    maps = torch.from_numpy(preds.anomaly_maps)[:, None]
    k = TINY["score_kernel"]
    expected = F.avg_pool2d(maps, k, stride=1, padding=k // 2).flatten(1).max(1).values
    assert np.allclose(preds.image_scores, expected.numpy(), atol=1e-6)
    assert (preds.anomaly_maps >= 0).all() and (preds.anomaly_maps <= 1).all()  # softmax channel


def test_extract_features_are_decoder_features(built):
    adapter, cat = built
    test = cat.split("test")
    feats = adapter.extract_features(test)
    assert feats.name == "discriminative_decoder"
    assert feats.features.shape == (len(test), TINY["disc_base_width"], 4, 4)  # 32 px / stride 8
    full = DRAEM(TINY | {"feature_stride": 1})
    full.engine.recon, full.engine.disc = adapter.engine.recon, adapter.engine.disc
    full.fitted = True
    f1 = full.extract_features(test).features
    assert f1.shape[2:] == (32, 32)
    pooled = F.avg_pool2d(torch.from_numpy(f1), 8, 8).numpy()
    assert np.allclose(pooled, feats.features, atol=1e-5)


def test_registry_entry_builds_quick_profile():
    from orchestrator.registry import load_registry

    reg = load_registry()
    assert "draem" in reg.available()
    adapter = reg.build("draem", profile="quick", source="native")
    assert isinstance(adapter, DRAEM) and adapter.config["image_size"] % 32 == 0
    assert reg.methods["draem"].params["epochs"] == 700


# --- upstream (vendor/draem at the pin) -------------------------------------------------------
def _need_upstream() -> str:
    return str(need_checkout("draem", "imgaug", "cv2"))


@pytest.mark.upstream
def test_upstream_networks_and_losses_equal_native_with_same_weights():
    checkout = _need_upstream()
    from adapters.draem.upstream import cuda_calls_as_noop, load_upstream, transfer_state

    up = load_upstream(checkout)
    torch.manual_seed(0)
    pairs = [
        (networks.Reconstructive(3, 3, 8), up.model_unet.ReconstructiveSubNetwork(3, 3, 8), 3),
        (networks.Discriminative(6, 2, 8), up.model_unet.DiscriminativeSubNetwork(6, 2, 8), 6),
    ]
    for ours, theirs, ch in pairs:
        ours.apply(networks.init_weights)
        transfer_state(ours, theirs)
        x = torch.rand(2, ch, 64, 64)
        for mode in (True, False):
            ours.train(mode)
            theirs.train(mode)
            assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with cuda_calls_as_noop(True):
        ssim = up.loss.SSIM()
    assert ssim(x, y).item() == pytest.approx(networks.ssim_loss(x, y).item(), abs=1e-6)
    p = torch.softmax(torch.randn(2, 2, 16, 16), 1)
    m = (torch.rand(2, 1, 16, 16) > 0.7).float()
    expected = networks.focal_loss(p, m).item()
    assert up.loss.FocalLoss()(p, m).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.upstream
def test_upstream_augmenters_run_after_compat_patches():
    checkout = _need_upstream()
    from adapters.draem.upstream import load_upstream

    ds = load_upstream(checkout).data_loader.MVTecDRAEMTrainDataset(".", ".", resize_shape=[32, 32])
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    for aug in ds.augmenters:  # all ten of upstream's texture augmentations
        assert aug(image=img).shape == img.shape
