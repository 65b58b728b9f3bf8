"""TorchSortedPool (metrics pools on a torch device) gives exactly the numpy pools' counts,
curves and areas; on CUDA too when a GPU is present."""

import numpy as np
import pytest
import torch

from orchestrator.metrics import FPR_LIMITS, RegionScores, SortedPool, au_spro, pixel_auroc
from orchestrator.metrics.device_pool import TorchSortedPool

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
    ),
]


def _scores(rng, n: int) -> np.ndarray:
    # quantised to 1/16: many ties between normal and region pixels (the hard case)
    return np.round(rng.random(n) * 16).astype(np.float32) / 16


@pytest.mark.parametrize("device", DEVICES)
def test_counts_match_numpy_with_ties(device):
    rng = np.random.default_rng(0)
    groups = [_scores(rng, 500), _scores(rng, 300)]
    keys = np.sort(np.concatenate([_scores(rng, 50), [-1.0, 2.0]])).astype(np.float32)
    lt, le = TorchSortedPool(groups, device).count_below(keys)
    ref_lt, ref_le = SortedPool(groups).count_below(keys)
    assert lt.dtype == np.int64 and np.array_equal(lt, ref_lt) and np.array_equal(le, ref_le)
    assert (le > lt).any()  # ties were present, so the <= count was exercised
    assert len(TorchSortedPool(groups, device)) == 800 == len(SortedPool(groups))


@pytest.mark.parametrize("device", DEVICES)
def test_au_spro_and_pixel_auroc_equal_numpy(device):
    rng = np.random.default_rng(1)
    good, other = _scores(rng, 2000), _scores(rng, 1000)
    regions = [RegionScores(_scores(rng, int(n)) + 0.3, int(s)) for n, s in [(40, 10), (9, 9)]]
    ref = au_spro(SortedPool([good]) + SortedPool([other]), regions)
    pool = TorchSortedPool([good], device) + TorchSortedPool([other], device)
    got = au_spro(pool, regions)
    assert set(got) == set(FPR_LIMITS)
    assert all(got[lim] == ref[lim] for lim in FPR_LIMITS), (got, ref)
    assert 0 < ref[0.05] < 1  # a non-trivial curve
    pos = np.concatenate([r.scores for r in regions])
    assert pixel_auroc(pool, pos) == pixel_auroc(SortedPool([good, other]), pos)


def test_empty_groups_are_dropped():
    pool = TorchSortedPool([np.zeros(0, np.float32), np.ones(3, np.float32)])
    assert len(pool.arrays) == 1 and len(pool) == 3
    lt, le = pool.count_below(np.array([1.0], np.float32))
    assert lt.tolist() == [0] and le.tolist() == [3]
