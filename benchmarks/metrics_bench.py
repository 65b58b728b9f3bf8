"""Benchmark of the metrics on a LOCO-sized evaluation set.

Generates LOCO-sized anomaly maps (default 120 test images of 1100 x 1600: 40 good,
40 logical, 40 structural, 2-4 elliptic regions each with absolute or relative saturation)
and prints:

- AU-sPRO at the five official FPR limits with the fast, exact, sort-based implementation
  (time, peak memory);
- equality fast == literal reference (benchmarks/reference_spro.py, a loop over thresholds
  and regions like the official script) to 1e-6 on the *full-size* set with its scores
  quantised to ``--levels`` levels, where the literal loop can visit every distinct
  threshold (on real-valued maps that would take days); the literal loop's measured cost per
  threshold there, extrapolated to the official script's ~1,000 thresholds;
- pixel AUROC, ours vs scikit-learn's roc_auc_score on the flattened arrays (time, memory,
  equality to 1e-9);
- everything at once (evaluate_arrays, incl. AU-PRO), as the survey calls it.

Peak memory: tracemalloc's peak of traced allocations (numpy's included) per step, and the
process's maximum resident set size at the end. No GPU path is timed here (the metrics are
numpy on the CPU).

Run:  python -m benchmarks.metrics_bench [--images 120] [--height 1100] [--width 1600]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np

from benchmarks.reference_spro import literal_au_spro, literal_spro_curve
from orchestrator.data.types import Region
from orchestrator.metrics import FPR_LIMITS, RegionScores, SortedPool, au_spro, pixel_auroc
from orchestrator.metrics.evaluate import _normal_pixels, evaluate_arrays


def make_set(n: int, h: int, w: int, seed: int = 0):
    """Maps (float32: uniform noise, raised inside regions), labels, masks and LOCO regions."""
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
                area = int(m.sum())
                if rng.random() < 0.7:  # relative saturation (1.0 or 0.5 of the area)
                    sat = int(rng.choice([1.0, 0.5]) * area)
                else:  # absolute saturation
                    sat = min(2000, area)
                regs.append(Region(m, 1, "d", sat))
        regions.append(regs)
    return maps, labels, masks, regions


def measured(fn):
    """Run fn, return (result, wall seconds, peak traced MiB); CPU seconds go to CPU_TIMES."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    dt = time.perf_counter() - t
    CPU_TIMES.append(time.process_time() - c)
    _, pk = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, pk / 2**20


#: CPU seconds (all threads) of each measured call: the machine may be shared, so wall
#: time alone can mislead; both are printed.
CPU_TIMES: list[float] = []
CPU_FAST: list[float] = []


def cpu() -> str:
    return f"CPU {CPU_TIMES[-1]:.1f} s"


def fast_spro(maps, labels, masks, regions) -> dict[str, dict[float, float]]:
    """AU-sPRO per subset, from the maps: normal pixels gathered, sorted, then the curves."""
    groups = [_normal_pixels(maps, masks, np.flatnonzero(labels == lab)) for lab in LAB]
    pools = dict(zip(LAB, SortedPool(groups, in_place=True).arrays))
    out = {}
    for kind in ("logical", "structural"):
        idx = np.flatnonzero(labels == kind)
        regs = [RegionScores(maps[i][r.mask], r.saturation) for i in idx for r in regions[i]]
        neg = SortedPool()
        neg.arrays = [pools["good"], pools[kind]]
        out[kind] = au_spro(neg, regs)
    return out


LAB = ("good", "logical", "structural")


def literal_subset(maps, labels, regions, kind, thresholds=None):
    """The literal reference's (FPR, sPRO) points on one subset (its images + all good)."""
    idx = np.flatnonzero((labels == "good") | (labels == kind))
    reg = [[r.mask for r in regions[i]] for i in idx]
    sat = [[r.saturation for r in regions[i]] for i in idx]
    return literal_spro_curve(maps[idx], reg, sat, thresholds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=120, help="test images (1/3 good)")
    ap.add_argument("--height", type=int, default=1100)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--levels", type=int, default=32, help="quantisation for the equality check")
    ap.add_argument("--skip-sklearn", action="store_true", help="skip roc_auc_score (GBs)")
    ap.add_argument("--skip-literal", action="store_true", help="skip the literal reference")
    args = ap.parse_args()
    n, h, w = args.images, args.height, args.width
    print(f"load average at start: {os.getloadavg()[0]:.1f} (the machine may be shared)")
    print(
        f"evaluation set: {n} images of {h} x {w} ({n * h * w / 1e6:.0f} M pixels), "
        f"{os.cpu_count()} CPU cores"
    )
    maps, labels, masks, regions = make_set(n, h, w)
    n_regions = sum(len(r) for r in regions)
    print(f"  {n_regions} regions, {masks.sum() / masks.size:.1%} of pixels anomalous")

    # -- fast AU-sPRO on the full set
    res, t_fast, m_fast = measured(lambda: fast_spro(maps, labels, masks, regions))
    CPU_FAST.append(CPU_TIMES[-1])
    print(
        f"\nAU-sPRO fast (exact curve, every distinct threshold): {t_fast:.2f} s wall "
        f"({cpu()}), peak {m_fast:.0f} MiB"
    )
    for lim in FPR_LIMITS:
        lo, st = res["logical"][lim], res["structural"][lim]
        print(f"  limit {lim:<4}  logical {lo:.6f}  structural {st:.6f}  mean {(lo + st) / 2:.6f}")

    # -- pixel AUROC
    def ours():
        groups = [_normal_pixels(maps, masks, np.flatnonzero(labels == lab)) for lab in LAB]
        return pixel_auroc(SortedPool(groups, in_place=True), maps[masks])

    auc, t_ours, m_ours = measured(ours)
    print(f"\npixel AUROC ours:    {auc:.12f} in {t_ours:6.2f} s ({cpu()}), peak {m_ours:5.0f} MiB")
    if not args.skip_sklearn:
        from sklearn.metrics import roc_auc_score

        ref, t_sk, m_sk = measured(lambda: roc_auc_score(masks.ravel(), maps.ravel()))
        diff = abs(auc - ref)
        print(f"pixel AUROC sklearn: {ref:.12f} in {t_sk:6.2f} s ({cpu()}), peak {m_sk:5.0f} MiB")
        print(
            f"  |diff| = {diff:.1e} ({'equal to 1e-9' if diff <= 1e-9 else 'MISMATCH'}); "
            f"ours is {t_sk / t_ours:.1f}x faster with {m_sk / max(m_ours, 1):.1f}x less memory"
        )

    # -- everything at once, as the survey calls it
    _, t_all, m_all = measured(
        lambda: evaluate_arrays(maps.reshape(n, -1).max(1), maps, labels, masks, regions)
    )
    print(
        f"\nevaluate_arrays (all metrics incl. AU-PRO and both sPRO subsets): {t_all:.2f} s "
        f"({cpu()}), "
        f"peak {m_all:.0f} MiB (the maps themselves: {maps.nbytes / 2**20:.0f} MiB)"
    )

    # -- equality with the literal reference at full size, every threshold visited
    if not args.skip_literal:
        np.multiply(maps, args.levels, out=maps)
        np.round(maps, out=maps)
        np.divide(maps, args.levels, out=maps)
        n_thr = len(np.unique(maps[::7, ::7, ::7]))
        t0 = time.perf_counter()
        fast_q = fast_spro(maps, labels, masks, regions)
        t_fq = time.perf_counter() - t0
        worst = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        for kind in ("logical", "structural"):
            fprs, spros = literal_subset(maps, labels, regions, kind)
            for lim in FPR_LIMITS:
                worst = max(worst, abs(fast_q[kind][lim] - literal_au_spro(fprs, spros, lim)))
        t_lq, c_lq = time.perf_counter() - t0, time.process_time() - c0
        n_visited = len(fprs)  # thresholds of the last subset, +inf and -inf included
        print(
            f"\nequality at full size, scores quantised to 1/{args.levels} (~{n_thr} distinct "
            f"values: the literal loop visits every threshold): max |fast - literal| over both "
            f"subsets and 5 limits = {worst:.1e} ({'OK <= 1e-6' if worst <= 1e-6 else 'MISMATCH'})"
            f"; fast {t_fq:.1f} s, literal {t_lq:.0f} s wall ({c_lq:.0f} s CPU)"
        )
        # the literal loop's cost per threshold (setup amortised in: a slight overestimate),
        # extrapolated to the official script's ~1,000 thresholds per subset
        per_thr, per_thr_cpu = t_lq / (2 * n_visited), c_lq / (2 * n_visited)
        print(
            f"literal reference: {per_thr:.2f} s wall ({per_thr_cpu:.2f} s CPU) per threshold "
            f"per subset -> at ~1,000 thresholds x 2 subsets (the official sampling): "
            f"~{2000 * per_thr:.0f} s wall, ~{2000 * per_thr_cpu:.0f} s CPU (extrapolated, not "
            f"run); the fast exact curve took {t_fast:.1f} s wall ({CPU_FAST[0]:.1f} s CPU): "
            f"~{2000 * per_thr / t_fast:.0f}x / ~{2000 * per_thr_cpu / CPU_FAST[0]:.0f}x faster"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"\nprocess max RSS: {rss:.0f} MiB; load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
