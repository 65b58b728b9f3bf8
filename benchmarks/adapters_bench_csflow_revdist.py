"""Benchmark of the CS-Flow and RevDist adapters (quick profile, native and upstream sources).

On a generated synthetic category (flat_connector, 96 x 128, 20 train / 30 test images) it fits
each (method, source) with the registry's quick profile and prints fit time, predict time per
image, extract_features shape and the metrics of orchestrator.metrics.evaluate (image AUROC,
pixel AUROC). Upstream rows need vendor/<name> (csflow: also efficientnet_pytorch).

Run:  python -m benchmarks.adapters_bench_csflow_revdist [--methods csflow,revdist]
      [--sources native,upstream] [--device cpu]
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
        counts = Counts(train=20, validation=2, good=10, logical=10, structural=10)
        generate(Path(tmp), categories=("flat_connector",), seed=0, size=(96, 128), counts=counts)
        cat = load_category(Path(tmp) / "flat_connector")
        train, test = cat.split("train"), cat.split("test")
        for method in args.methods.split(","):
            for source in args.sources.split(","):
                try:
                    adapter = reg.build(method, device=args.device, source=source, profile="quick")
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"{method}/{source}: skipped ({exc})")
                    continue
                t0 = time.perf_counter()
                adapter.fit(train)
                t1 = time.perf_counter()
                preds = adapter.predict(test)
                t2 = time.perf_counter()
                feats = adapter.extract_features(test[:4])
                m = evaluate(test, preds)
                row = {
                    "method": method, "source": source, "fit_s": round(t1 - t0, 2),
                    "predict_ms_per_image": round(1000 * (t2 - t1) / len(test), 1),
                    "features": tuple(feats.features.shape),
                    "image_auroc": round(m.get("image_auroc", float("nan")), 3),
                    "pixel_auroc": round(m.get("pixel_auroc", float("nan")), 3),
                }
                print(row)
                rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="csflow,revdist")
    p.add_argument("--sources", default="native,upstream")
    p.add_argument("--device", default="cpu")
    bench(p.parse_args())


if __name__ == "__main__":
    main()
