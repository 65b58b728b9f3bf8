"""Benchmark of the DRAEM adapter (native and, when vendor/draem is present, upstream).

On a generated synthetic category (flat_connector, default 96 x 128, 20 train / 30 test
images) it fits each source with the same settings (default: the registry's quick profile
with ``--steps`` optimiser steps in total) and prints per source: seconds per optimiser
step, fit time, predict time per image, extract_features time per image and shape, and the
image AUROC / pixel AUROC from orchestrator.metrics.evaluate.

Run:  python -m benchmarks.adapters_bench_draem [--steps 40] [--device cpu]
      [--sources native,upstream]
(to be merged into benchmarks/adapters_bench.py once that exists)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from orchestrator.data.loco import load_category
from orchestrator.data.synthetic import Counts, generate
from orchestrator.registry import load_registry


def bench(args: argparse.Namespace) -> list[dict]:
    from orchestrator.metrics import evaluate

    reg = load_registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        counts = Counts(train=args.train, validation=2, good=10, logical=10, structural=10)
        (folder,) = generate(tmp, categories=("flat_connector",), size=(96, 128), counts=counts)
        cat = load_category(Path(folder))
        train, test = cat.split("train"), cat.split("test")
        for source in args.sources.split(","):
            steps_per_epoch = max(1, args.steps // args.epochs)
            overrides = {"epochs": args.epochs, "iterations_per_epoch": steps_per_epoch}
            try:
                adapter = reg.build("draem", overrides, device=args.device, source=source,
                                    profile=args.profile)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next source
                print(f"{source}: skipped ({exc})")
                continue
            t0 = time.perf_counter()
            adapter.fit(train)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            preds = adapter.predict(test)
            pred_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            feats = adapter.extract_features(test)
            feat_s = time.perf_counter() - t0
            m = evaluate(test, preds)
            rows.append({
                "source": adapter.source,
                "s/step": fit_s / (args.epochs * steps_per_epoch),
                "fit s": fit_s,
                "predict ms/img": 1000 * pred_s / len(test),
                "features ms/img": 1000 * feat_s / len(test),
                "features": "x".join(map(str, feats.features.shape[1:])),
                "image_auroc": m.get("image_auroc", float("nan")),
                "pixel_auroc": m.get("pixel_auroc", float("nan")),
            })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="optimiser steps in total")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train", type=int, default=20, help="training images")
    p.add_argument("--profile", default="quick")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sources", default="native,upstream")
    args = p.parse_args()
    rows = bench(args)
    if not rows:
        return
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
