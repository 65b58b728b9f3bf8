"""Benchmark of the metrics on a LOCO-sized evaluation set.

Prints, on a generated set of LOCO-sized maps (default 120 test images of 1100 x 1600:
40 good, 40 logical, 40 structural, several regions each):

- AU-sPRO at the five official FPR limits, fast (exact, sort-based) vs the literal
  reference (a loop over thresholds and regions like the official script, which samples
  about 1,000 thresholds): time, and equality to 1e-6 on a quantised subset where the
  literal loop can visit every distinct threshold;
- pixel AUROC, ours vs scikit-learn's roc_auc_score on the flattened arrays;
- peak traced memory of each (tracemalloc sees numpy's allocations).

Run:  python -m benchmarks.metrics_bench [--images 120] [--height 1100] [--width 1600]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from benchmarks.reference_spro import literal_au_spro, literal_spro_curve
from orchestrator.data.types import Region
from orchestrator.metrics import FPR_LIMITS, RegionScores, SortedPool, au_spro, pixel_auroc
from orchestrator.metrics.evaluate import evaluate_arrays


def make_set(n: int, h: int, w: int, seed: int = 0):
    """Maps (float32, smooth noise + raised regions), labels, masks and LOCO regions."""
    rng = np.random.default_rng(seed)
    labels = np.array(["good", "logical", "structural"] * (n // 3 + 1))[:n]
    maps = rng.random((n, h, w), dtype=np.float32)
    masks = np.zeros((n, h, w), dtype=bool)
    regions: list[list[Region]] = []
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    for i in range(n):
        regs: list[Region] = []
        if labels[i] != "good":
            for _ in range(int(rng.integers(2, 5))):
                cy, cx = rng.integers(0, h), rng.integers(0, w)
                ry, rx = rng.integers(20, 150, 2)
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
                maps[i][m] += rng.uniform(0.1, 0.8)
                masks[i] |= m
                sat = int(m.sum() * rng.choice([1.0, 0.5])) if rng.random() < 0.7 else 2000
                regs.append(Region(m, 1, "d", min(sat, int(m.sum()))))
        regions.append(regs)
    return maps, labels, masks, regions


def peak(fn):
    """Run fn, return (result, seconds, peak traced MiB)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    _, pk = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, pk / 2**20


def fast_spro(maps, labels, masks, regions):
    pools = {
        lab: SortedPool().add(
            np.concatenate([maps[i][~masks[i]] for i in np.flatnonzero(labels == lab)]),
            in_place=True,
        )
        for lab in ("good", "logical", "structural")
    }
    out = {}
    for kind in ("logical", "structural"):
        idx = np.flatnonzero(labels == kind)
        regs = [RegionScores(maps[i][r.mask], r.saturation) for i in idx for r in regions[i]]
        out[kind] = au_spro(pools["good"] + pools[kind], regs)
    return out


def literal_time_per_threshold(maps, labels, masks, regions, n_thresholds: int = 5) -> float:
    """Seconds per threshold of the literal loop on the logical subset (all its images)."""
    idx = np.flatnonzero((labels == "good") | (labels == "logical"))
    sub_maps = maps[idx]
    reg = [[r.mask for r in regions[i]] for i in idx]
    sat = [[r.saturation for r in regions[i]] for i in idx]
    thresholds = np.linspace(0.2, 0.9, n_thresholds)
    t = time.perf_counter()
    literal_spro_curve(sub_maps, reg, sat, thresholds)
    return (time.perf_counter() - t) / (n_thresholds + 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--height", type=int, default=1100)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    n, h, w = args.images, args.height, args.width
    print(f"evaluation set: {n} images of {h} x {w} ({n * h * w / 1e6:.0f} M pixels)")
    maps, labels, masks, regions = make_set(n, h, w)

    # -- equality with the literal reference, on a quantised subset (every threshold visited)
    q_idx = np.r_[np.flatnonzero(labels == "good")[:2], np.flatnonzero(labels == "logical")[:2]]
    q_maps = np.round(maps[q_idx] * 100) / 100
    q_reg = [[r.mask for r in regions[i]] for i in q_idx]
    q_sat = [[r.saturation for r in regions[i]] for i in q_idx]
    normal = ~masks[q_idx]
    fast_q = au_spro(
        SortedPool([q_maps[normal]]),
        [
            RegionScores(q_maps[k][m], s)
            for k in range(len(q_idx))
            for m, s in zip(q_reg[k], q_sat[k])
        ],
    )
    fprs, spros = literal_spro_curve(q_maps, q_reg, q_sat)
    diff = max(abs(fast_q[lim] - literal_au_spro(fprs, spros, lim)) for lim in FPR_LIMITS)
    print(
        f"equality check (4 images, {len(np.unique(q_maps))} distinct scores, every threshold): "
        f"max |fast - literal| = {diff:.2e} ({'OK' if diff <= 1e-6 else 'MISMATCH'})"
    )

    # -- fast AU-sPRO on the full set
    res, t_fast, m_fast = peak(lambda: fast_spro(maps, labels, masks, regions))
    print(f"\nAU-sPRO (fast, exact curve): {t_fast:.2f} s, peak {m_fast:.0f} MiB")
    for lim in FPR_LIMITS:
        lo, st = res["logical"][lim], res["structural"][lim]
        print(f"  limit {lim:<5g} logical {lo:.6f}  structural {st:.6f}  mean {(lo + st) / 2:.6f}")
    per_thr = literal_time_per_threshold(maps, labels, masks, regions)
    t_literal = per_thr * 1000 * 2  # ~1,000 thresholds, two subsets
    print(
        f"literal reference: {per_thr:.2f} s per threshold per subset, measured on 7; "
        f"with the official ~1,000 thresholds x 2 subsets: ~{t_literal:.0f} s "
        f"(extrapolated) -> fast is {t_literal / t_fast:.0f}x faster"
    )

    # -- pixel AUROC
    def ours():
        pools = SortedPool()
        for lab in ("good", "logical", "structural"):
            idx = np.flatnonzero(labels == lab)
            pools.add(np.concatenate([maps[i][~masks[i]] for i in idx]), in_place=True)
        return pixel_auroc(pools, maps[masks])

    auc, t_ours, m_ours = peak(ours)
    print(f"\npixel AUROC ours: {auc:.12f} in {t_ours:.2f} s, peak {m_ours:.0f} MiB")
    if not args.skip_sklearn:
        from sklearn.metrics import roc_auc_score

        ref, t_sk, m_sk = peak(lambda: roc_auc_score(masks.ravel(), maps.ravel()))
        print(f"pixel AUROC sklearn: {ref:.12f} in {t_sk:.2f} s, peak {m_sk:.0f} MiB")
        print(
            f"  |diff| = {abs(auc - ref):.2e}; ours is {t_sk / t_ours:.1f}x faster, "
            f"{m_sk / max(m_ours, 1):.1f}x less memory"
        )

    # -- everything at once, as the survey calls it
    _, t_all, m_all = peak(
        lambda: evaluate_arrays(maps.reshape(n, -1).max(1), maps, labels, masks, regions)
    )
    print(
        f"\nevaluate_arrays (all metrics incl. AU-PRO): {t_all:.2f} s, peak {m_all:.0f} MiB "
        f"(input maps themselves: {maps.nbytes / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
