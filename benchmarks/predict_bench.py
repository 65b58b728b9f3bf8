"""Throughput of `orchestrate predict` (images/s on this machine) against the method's bare
``predict`` on the same images in the same run.

Fits one method (default PatchCore at the quick profile) on the synthetic pushpins category,
saves it as a trial does (an MLflow Model with its validation-fitted calibration and
thresholds), then scores the category's test images twice: with ``Adapter.predict`` on the
loaded SampleSet (the reference) and through ``orchestrator.predict.predict_images`` from the
model folder (decoding files, maps as TIFF, overlays, predictions.csv). Prints both rates and
their ratio.

    .venv/bin/python -m benchmarks.predict_bench [--method patchcore] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="patchcore")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each (best kept)")
    args = ap.parse_args()

    from orchestrator.calibration import fit_calibrator
    from orchestrator.data import load_dataset
    from orchestrator.data.validation import protocol_sets
    from orchestrator.models import Detector, validation_thresholds
    from orchestrator.models.pyfunc import save_detector_model
    from orchestrator.predict import predict_images
    from orchestrator.registry import load_registry

    (cat,) = load_dataset("synthetic", categories=["pushpins"])
    adapter = load_registry().build(args.method, device="cpu", profile=args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        train, validation = protocol_sets(cat, Path(tmp) / "validation")
        adapter.fit(train)
        val = adapter.predict(validation)
        cal = fit_calibrator("bounded_sigmoid", val.image_scores, validation.is_anomalous)
        thr = validation_thresholds(validation, val)
        info = {"method": args.method, "category": cat.name}
        model = save_detector_model(Path(tmp) / "model", Detector(adapter, cal, thr, info))
        test = cat.split("test")
        n = len(test)
        bare, full = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            adapter.predict(test)
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = predict_images(
                str(model),
                [Path(cat.root) / "test"],
                Path(tmp) / f"out{r}",
                device="cpu",
                batch_size=args.batch_size,
                stream=io.StringIO(),
            )
            full.append(time.perf_counter() - t0)
            assert res.scored == n and not res.failed
    b, f = min(bare), min(full)
    size = f"{test.eval_size[1]}x{test.eval_size[0]}"
    print(f"{args.method} ({args.profile} profile), {n} test images of {size}, CPU")
    print(f"Adapter.predict (reference):   {n / b:7.1f} images/s  ({b:.2f} s)")
    print(f"orchestrate predict (full):    {n / f:7.1f} images/s  ({f:.2f} s, model load included)")
    print(f"ratio full / reference time:   {f / b:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
