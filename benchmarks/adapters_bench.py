"""Fit + predict time and peak memory of the native vs the upstream source of each method (CPU).

    python -m benchmarks.adapters_bench [--methods patchcore,simplenet,csflow,draem,revdist]
        [--size 96 128] [--train 20] [--set KEY=VALUE | METHOD.KEY=VALUE ...]

Generates one small synthetic category (flat_connector, ``--size``, 20 test images) in a temp
folder, then runs every (method, source) in a fresh subprocess (so peak resident memory,
ru_maxrss, is per run) with the registry's quick profile and the same overrides, hence the
same backbone weights and the same number of optimiser steps. Each method gets an input size
it accepts (``IMAGE_SIZE``: CS-Flow needs multiples of 128, upstream RevDist square images).
Prints seconds, peak MiB, image and pixel AUROC per run and the native / upstream ratios
(goal: <= 1.0). A method whose upstream checkout is missing is reported and skipped.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

METHODS = ("patchcore", "simplenet", "csflow", "draem", "revdist")
#: Input size per method for this benchmark (small, accepted by both sources).
IMAGE_SIZE = {
    "patchcore": [96, 128],
    "simplenet": [96, 128],
    "csflow": [128, 128],
    "draem": [96, 128],
    "revdist": [128, 128],
}


def _one(method: str, source: str, root: str, overrides: dict) -> dict:
    from orchestrator.data import load_category
    from orchestrator.metrics import evaluate
    from orchestrator.registry import load_registry

    cat = load_category(Path(root) / "flat_connector")
    train, test = cat.split("train"), cat.split("test")
    adapter = load_registry().build(method, overrides, source=source, profile="quick")
    t0 = time.perf_counter()
    adapter.fit(train)
    t1 = time.perf_counter()
    preds = adapter.predict(test)
    t2 = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m = evaluate(test, preds)
    return {
        "fit_s": t1 - t0,
        "predict_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_mib": peak_mib,
        "image_auroc": m["image_auroc"],
        "pixel_auroc": m["pixel_auroc"],
    }


def _overrides(items: list[str], method: str) -> dict:
    """``KEY=VALUE`` for every method, ``METHOD.KEY=VALUE`` for one."""
    from orchestrator.cli.parity import parse_overrides

    out = {"image_size": IMAGE_SIZE.get(method, [96, 128])}
    for key, value in parse_overrides(items).items():
        target, dot, name = key.partition(".")
        if not dot:
            out[key] = value
        elif target == method:
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> None:
    from orchestrator.data.synthetic import Counts, generate
    from orchestrator.registry import load_registry
    from orchestrator.vendor import checkout_state

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    p.add_argument("--train", type=int, default=20, help="training images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    counts = Counts(train=args.train, validation=1, good=10, logical=5, structural=5)
    registry = load_registry()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, categories=("flat_connector",), size=tuple(args.size), counts=counts)
        print(
            f"flat_connector {args.size[0]}x{args.size[1]}, {args.train} train / 20 test "
            f"images, quick profile, CPU"
        )
        head = ("fit s", "pred s", "total s", "peak MiB", "img AUROC", "px AUROC")
        print(f"{'method':10} {'source':9} " + " ".join(f"{h:>9}" for h in head))
        for method in args.methods.split(","):
            overrides = _overrides(args.overrides, method)
            if not checkout_state(method, registry.get(method).commit).usable:
                print(f"{method:10} skipped: vendor/{method} missing or not at its pin")
                continue
            res = {}
            for source in ("upstream", "native"):
                with ctx.Pool(1) as pool:
                    r = pool.apply(_one, (method, source, tmp, overrides))
                res[source] = r
                print(
                    f"{method:10} {source:9} {r['fit_s']:9.2f} {r['predict_s']:9.2f} "
                    f"{r['total_s']:9.2f} {r['peak_mib']:9.0f} {r['image_auroc']:9.3f} "
                    f"{r['pixel_auroc']:9.3f}",
                    flush=True,
                )
            t = res["native"]["total_s"] / res["upstream"]["total_s"]
            m = res["native"]["peak_mib"] / res["upstream"]["peak_mib"]
            print(
                f"{method:10} ratio native/upstream: time {t:.2f}, peak memory {m:.2f}  {overrides}"
            )


if __name__ == "__main__":
    main()
