"""Pixel AUROC, sPRO/PRO curves and their areas: by hand, against sklearn, against the
literal reference, and invariances (hypothesis)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from benchmarks.reference_spro import literal_au_spro, literal_spro_curve
from orchestrator.data.types import Region
from orchestrator.metrics import (
    FPR_LIMITS,
    RegionScores,
    SortedPool,
    area_under_curve,
    au_pro,
    au_spro,
    connected_components,
    evaluate_arrays,
    pixel_auroc,
    spro_curve,
)


def test_spro_by_hand_one_region_absolute_saturation():
    # 4 normal pixels 0.1..0.4; one region of 4 pixels scoring 0.9, 0.8, 0.05, 0.05, s = 2
    neg = SortedPool([np.array([0.1, 0.2, 0.3, 0.4])])
    reg = [RegionScores(np.array([0.9, 0.8, 0.05, 0.05]), 2)]
    fpr, spro = spro_curve(neg, reg)
    # the region saturates (2 pixels) before any normal pixel is positive: sPRO 1 at FPR 0
    assert area_under_curve(fpr, spro, 0.3) == pytest.approx(1.0)
    assert area_under_curve(fpr, spro, 1.0) == pytest.approx(1.0)
    # with s = 4 (= area) it is 0.5 until every normal pixel is positive
    fpr, spro = spro_curve(neg, [RegionScores(np.array([0.9, 0.8, 0.05, 0.05]), 4)])
    assert area_under_curve(fpr, spro, 0.3) == pytest.approx(0.5)


def test_spro_by_hand_interleaved():
    # negatives 0.5 and 0.3 (N=2); region A: [0.6, 0.4], s=2 ; region B: [0.2], s=1 (m=2)
    neg = SortedPool([np.array([0.5, 0.3])])
    regs = [RegionScores(np.array([0.6, 0.4]), 2), RegionScores(np.array([0.2]), 1)]
    fpr, spro = spro_curve(neg, regs)
    # thresholds descending: >0.6:(0,0) ; 0.6 in: A 1/2 -> mean .25 ; 0.5 neg: fpr .5 ;
    # 0.4: A full -> .5 ; 0.3 neg: fpr 1 ; 0.2: B full -> 1 (at fpr 1)
    # area over [0,1]: 0.5*0.25 + 0.5*0.5 = 0.375
    assert area_under_curve(fpr, spro, 1.0) == pytest.approx(0.375)
    # up to 0.25: height .25 -> normalised 0.25
    assert area_under_curve(fpr, spro, 0.25) == pytest.approx(0.25)
    # 0.5 -> 0.25 on [0, .5], the curve jumps to .5 at fpr .5: area .125 / .5
    assert area_under_curve(fpr, spro, 0.5) == pytest.approx(0.25)


def test_tie_between_normal_and_region_pixels_is_a_diagonal():
    # one normal pixel and one region pixel both at 0.5: threshold 0.5 -> (0, 0);
    # below 0.5 -> (1, 1). Joined linearly, as the official trapezoid over thresholds does.
    fpr, spro = spro_curve(SortedPool([np.array([0.5])]), [RegionScores(np.array([0.5]), 1)])
    assert area_under_curve(fpr, spro, 1.0) == pytest.approx(0.5)
    assert area_under_curve(fpr, spro, 0.1) == pytest.approx(0.05)


def test_relative_vs_absolute_saturation():
    neg = SortedPool([np.linspace(0, 1, 100)])
    region = np.array([2.0] * 10 + [-1.0] * 90)  # 10 of 100 pixels detected early
    full = au_spro(neg, [RegionScores(region, 100)], [0.3])[0.3]  # relative 1.0
    tenth = au_spro(neg, [RegionScores(region, 10)], [0.3])[0.3]  # relative 0.1 or abs 10
    assert tenth == pytest.approx(1.0)
    assert full == pytest.approx(0.1)


def test_au_pro_by_hand_with_connected_components():
    # two components in one mask: 4 px (2 detected) and 2 px (both detected), s = area
    mask = np.zeros((5, 6), bool)
    mask[0:2, 0:2] = True
    mask[4, 4:6] = True
    comps = connected_components(mask)
    assert sorted(int(c.sum()) for c in comps) == [2, 4]
    scores = np.full((5, 6), 0.5, np.float32)  # normal pixels 0.5
    scores[mask] = 0.0  # missed component pixels below every normal pixel
    scores[0, 0:2] = 1.0
    scores[4, 4:6] = 1.0
    neg = SortedPool([scores[~mask]])
    # PRO = (2/4 + 2/2) / 2 = 0.75 flat from FPR 0 to 1 (then 1 once the misses count)
    assert au_pro(neg, [scores[c] for c in comps]) == pytest.approx(0.75)
    # diagonal neighbours are one component (8-connectivity, as MVTec AD's code)
    diag = np.eye(3, dtype=bool)
    assert len(connected_components(diag)) == 1


def test_pixel_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    maps = np.round(rng.random((5, 30, 40)) * 20).astype(np.float32)
    masks = rng.random((5, 30, 40)) < 0.1
    maps[masks] += 3
    pool = SortedPool([maps[:2][~masks[:2]], maps[2:][~masks[2:]]])
    ours = pixel_auroc(pool, maps[masks])
    assert ours == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


def test_pixel_auroc_by_hand():
    # negatives 0.1, 0.5; positives 0.5 (tie with one, beats one), 0.9 (beats both)
    pool = SortedPool([np.array([0.5]), np.array([0.1])])
    assert pixel_auroc(pool, np.array([0.5, 0.9])) == pytest.approx((1.5 + 2) / 4)
    with pytest.raises(ValueError):
        pixel_auroc(SortedPool(), np.array([1.0]))


def _random_loco(rng, n=6, h=16, w=20, levels=40):
    maps = np.round(rng.random((n, h, w)) * levels).astype(np.float32) / levels
    regions, sats = [[], []], [[], []]
    for i in range(2, n):
        ms, ss = [], []
        for _ in range(int(rng.integers(1, 3))):
            m = np.zeros((h, w), bool)
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 6)
            m[y : y + 4, x : x + int(rng.integers(2, 7))] = True
            maps[i][m] += rng.uniform(0, 0.5)
            ms.append(m)
            ss.append(int(rng.integers(1, m.sum() + 1)))
        regions.append(ms)
        sats.append(ss)
    return maps, regions, sats


def _fast(maps, regions, sats):
    normal = np.ones(maps.shape, bool)
    for i, regs in enumerate(regions):
        for m in regs:
            normal[i] &= ~m
    regs = [
        RegionScores(maps[i][m], s) for i in range(len(maps)) for m, s in zip(regions[i], sats[i])
    ]
    return au_spro(SortedPool([maps[normal]]), regs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("levels", [8, 0])  # 8: many ties; 0: continuous scores
def test_fast_equals_literal_reference(seed, levels):
    rng = np.random.default_rng(seed)
    maps, regions, sats = _random_loco(rng, levels=levels or 40)
    if not levels:
        maps = maps + rng.random(maps.shape).astype(np.float32) * 1e-3
    fprs, spros = literal_spro_curve(maps, regions, sats)
    for lim, v in _fast(maps, regions, sats).items():
        assert v == pytest.approx(literal_au_spro(fprs, spros, lim), abs=1e-6)


def test_evaluate_arrays_subsets_equal_literal_reference():
    """au_spro_<type>_<limit> = literal AU-sPRO over that type's images + all good images."""
    rng = np.random.default_rng(7)
    maps, region_masks, sats = _random_loco(rng, n=8)
    labels = np.array(["good", "good", "logical", "structural"] * 2)
    masks = np.zeros(maps.shape, bool)
    regions = []
    for i, (ms, ss) in enumerate(zip(region_masks, sats)):
        if labels[i] == "good":  # good images have no regions
            ms, ss = [], []
            region_masks[i], sats[i] = [], []
        for m in ms:
            masks[i] |= m
        regions.append([Region(m, 1, "d", s) for m, s in zip(ms, ss)])
    out = evaluate_arrays(maps.max(axis=(1, 2)), maps, labels, masks, regions)
    expected = {}
    for kind in ("logical", "structural"):
        idx = np.flatnonzero((labels == "good") | (labels == kind))
        fprs, spros = literal_spro_curve(
            maps[idx], [region_masks[i] for i in idx], [sats[i] for i in idx]
        )
        for lim in FPR_LIMITS:
            expected[kind, lim] = literal_au_spro(fprs, spros, lim)
            assert out[f"au_spro_{kind}_{lim}"] == pytest.approx(expected[kind, lim], abs=1e-6)
    for lim in FPR_LIMITS:
        mean = (expected["logical", lim] + expected["structural", lim]) / 2
        assert out[f"au_spro_{lim}"] == pytest.approx(mean, abs=1e-6)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))


seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, power=st.floats(0.2, 5.0), shift=st.floats(-10, 10))
def test_monotone_transform_invariance(seed, power, shift):
    rng = np.random.default_rng(seed)
    maps, regions, sats = _random_loco(rng)
    maps = maps + 0.01  # positive for the power transform
    transformed = (maps.astype(np.float64) ** power + shift).astype(np.float32)
    # float32 rounding of the transform may merge distinct values: then it is not monotone
    assume(len(np.unique(maps)) == len(np.unique(transformed)))
    labels = ["good", "good"] + ["logical", "structural"] * 2
    masks = np.zeros(maps.shape, bool)
    for i, regs in enumerate(regions):
        for m in regs:
            masks[i] |= m
    region_objs = [[Region(m, 1, "d", s) for m, s in zip(r, s_)] for r, s_ in zip(regions, sats)]

    def metrics(m):
        out = evaluate_arrays(m.max(axis=(1, 2)), m, labels, masks, region_objs)
        out.pop("f1_threshold")  # a score, not a metric: it moves with the transform
        return out

    a, b = metrics(maps), metrics(transformed)
    assert set(a) == set(b)
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-9), key


@settings(max_examples=20, deadline=None)
@given(seed=seeds, low=st.floats(-5, 5), gap=st.floats(1e-3, 5))
def test_perfect_map_scores_one(seed, low, gap):
    rng = np.random.default_rng(seed)
    _, regions, sats = _random_loco(rng)
    maps = np.full((len(regions), 16, 20), low, np.float32)
    masks = np.zeros(maps.shape, bool)
    for i, regs in enumerate(regions):
        for m in regs:
            masks[i] |= m
    maps[masks] = np.float32(low + gap)
    assume(np.float32(low + gap) > np.float32(low))
    labels = ["good", "good"] + ["logical", "structural"] * ((len(regions) - 2) // 2)
    region_objs = [
        [Region(m, 1, "d", s) for m, s in zip(regs, ss)] for regs, ss in zip(regions, sats)
    ]
    out = evaluate_arrays(maps.max(axis=(1, 2)), maps, labels, masks, region_objs)
    for key in ("pixel_auroc", "au_pro", "image_auroc_mean", "f1_max"):
        assert out[key] == pytest.approx(1.0), key
    for lim in FPR_LIMITS:
        assert out[f"au_spro_{lim}"] == pytest.approx(1.0), lim
