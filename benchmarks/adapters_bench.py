"""Fit + predict time and peak memory of native vs upstream PatchCore / SimpleNet (CPU).

    python -m benchmarks.adapters_bench [--methods patchcore,simplenet] [--size 96 128]
        [--train 20] [--set key=value ...]

Generates one small synthetic category (flat_connector) in a temp folder, then runs every
(method, source) in a fresh subprocess (so peak resident memory, ru_maxrss, is per run) with
the registry's quick profile and the same overrides, hence the same backbone weights. Prints
seconds and peak MiB per run and the native / upstream ratios (goal: <= 1.0).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path


def _one(method: str, source: str, root: str, overrides: dict) -> dict:
    from orchestrator.data import load_category
    from orchestrator.registry import load_registry

    cat = load_category(Path(root) / "flat_connector")
    train, test = cat.split("train"), cat.split("test")
    adapter = load_registry().build(method, overrides, source=source, profile="quick")
    t0 = time.perf_counter()
    adapter.fit(train)
    t1 = time.perf_counter()
    adapter.predict(test)
    t2 = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"fit_s": t1 - t0, "predict_s": t2 - t1, "total_s": t2 - t0, "peak_mib": peak_mib}


def main(argv: list[str] | None = None) -> None:
    from orchestrator.cli.parity import parse_overrides
    from orchestrator.data.synthetic import Counts, generate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="patchcore,simplenet")
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--train", type=int, default=20, help="training images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    overrides = {"image_size": list(args.size)} | parse_overrides(args.overrides)
    counts = Counts(train=args.train, validation=1, good=10, logical=5, structural=5)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, categories=("flat_connector",), size=tuple(args.size), counts=counts)
        print(f"flat_connector {args.size[0]}x{args.size[1]}, {args.train} train / 20 test "
              f"images, quick profile, overrides {overrides}")
        head = ("method", "source", "fit s", "pred s", "total s", "peak MiB")
        print(f"{head[0]:10} {head[1]:9} " + " ".join(f"{h:>8}" for h in head[2:]))
        for method in args.methods.split(","):
            res = {}
            for source in ("upstream", "native"):
                with ctx.Pool(1) as pool:
                    r = pool.apply(_one, (method, source, tmp, overrides))
                res[source] = r
                print(f"{method:10} {source:9} {r['fit_s']:8.2f} {r['predict_s']:8.2f} "
                      f"{r['total_s']:8.2f} {r['peak_mib']:9.0f}", flush=True)
            t = res["native"]["total_s"] / res["upstream"]["total_s"]
            m = res["native"]["peak_mib"] / res["upstream"]["peak_mib"]
            print(f"{method:10} ratio native/upstream: time {t:.2f}, peak memory {m:.2f}")


if __name__ == "__main__":
    main()
