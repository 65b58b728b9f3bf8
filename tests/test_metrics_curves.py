"""Pixel AUROC, sPRO/PRO curves and their areas: by hand, against sklearn, against the
literal reference, and invariances (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from benchmarks.reference_spro import literal_au_spro, literal_spro_curve
from orchestrator.metrics import (
    RegionScores,
    SortedPool,
    area_under_curve,
    au_spro,
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


def test_relative_vs_absolute_saturation():
    neg = SortedPool([np.linspace(0, 1, 100)])
    region = np.array([2.0] * 10 + [-1.0] * 90)  # 10 of 100 pixels detected early
    full = au_spro(neg, [RegionScores(region, 100)], [0.3])[0.3]  # relative 1.0
    tenth = au_spro(neg, [RegionScores(region, 10)], [0.3])[0.3]  # relative 0.1 or abs 10
    assert tenth == pytest.approx(1.0)
    assert full == pytest.approx(0.1)


def test_pixel_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    maps = np.round(rng.random((5, 30, 40)) * 20).astype(np.float32)
    masks = rng.random((5, 30, 40)) < 0.1
    maps[masks] += 3
    pool = SortedPool([maps[:2][~masks[:2]], maps[2:][~masks[2:]]])
    ours = pixel_auroc(pool, maps[masks])
    assert ours == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


def _random_loco(rng, n=6, h=16, w=20):
    maps = np.round(rng.random((n, h, w)) * 40).astype(np.float32) / 40
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


@pytest.mark.parametrize("seed", range(5))
def test_fast_equals_literal_reference(seed):
    maps, regions, sats = _random_loco(np.random.default_rng(seed))
    fprs, spros = literal_spro_curve(maps, regions, sats)
    normal = np.ones(maps.shape, bool)
    for i, regs in enumerate(regions):
        for m in regs:
            normal[i] &= ~m
    fast = au_spro(
        SortedPool([maps[normal]]),
        [
            RegionScores(maps[i][m], s)
            for i in range(len(maps))
            for m, s in zip(regions[i], sats[i])
        ],
    )
    for lim, v in fast.items():
        assert v == pytest.approx(literal_au_spro(fprs, spros, lim), abs=1e-6)


maps_strategy = st.integers(0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(seed=maps_strategy, power=st.floats(0.2, 5.0), shift=st.floats(-10, 10))
def test_monotone_transform_invariance(seed, power, shift):
    rng = np.random.default_rng(seed)
    maps, regions, sats = _random_loco(rng)
    maps = maps + 0.01  # positive for the power transform

    def metrics(m):
        normal = np.ones(m.shape, bool)
        for i, regs in enumerate(regions):
            for r in regs:
                normal[i] &= ~r
        pool = SortedPool([m[normal]])
        regs = [
            RegionScores(m[i][r], s) for i in range(len(m)) for r, s in zip(regions[i], sats[i])
        ]
        return au_spro(pool, regs)[0.05], pixel_auroc(pool, m[~normal])

    a = metrics(maps)
    b = metrics((maps.astype(np.float64) ** power + shift).astype(np.float32))
    # float32 rounding of the transform could merge distinct values: only then may they differ
    if len(np.unique(maps)) == len(
        np.unique((maps.astype(np.float64) ** power + shift).astype(np.float32))
    ):
        assert b == pytest.approx(a, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=maps_strategy)
def test_perfect_map_scores_one(seed):
    rng = np.random.default_rng(seed)
    _, regions, sats = _random_loco(rng)
    maps = np.zeros((len(regions), 16, 20), np.float32)
    masks = np.zeros(maps.shape, bool)
    for i, regs in enumerate(regions):
        for m in regs:
            masks[i] |= m
    maps[masks] = 1.0
    labels = ["good", "good"] + ["logical", "structural"] * ((len(regions) - 2) // 2)
    from orchestrator.data.types import Region

    region_objs = [
        [Region(m, 1, "d", s) for m, s in zip(regs, ss)] for regs, ss in zip(regions, sats)
    ]
    out = evaluate_arrays(maps.max(axis=(1, 2)), maps, labels, masks, region_objs)
    for key in ("pixel_auroc", "au_pro", "au_spro_0.05", "au_spro_1.0", "image_auroc_mean"):
        assert out[key] == pytest.approx(1.0), key
