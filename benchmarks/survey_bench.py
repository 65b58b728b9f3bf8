"""Overhead of `orchestrate survey` (Ray Tune + MLflow + reports) over the bare fits.

A 10-trial survey (``--methods`` copies of one method with different seeds x the synthetic
categories) through the real command, against the same fit / predict / evaluate calls made
directly in one process. Prints both wall times and the overhead fraction (goal <= 10 %).

    .venv/bin/python benchmarks/survey_bench.py [--method patchcore] [--copies 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def direct(method: str, copies: int, profile: str, registry: Path) -> float:
    """The same fits, predictions and metrics in this process, one after another."""
    from orchestrator.data import load_dataset
    from orchestrator.metrics import evaluate
    from orchestrator.registry import load_registry

    reg = load_registry(registry)
    t0 = time.perf_counter()
    for cat in load_dataset("synthetic"):
        train, test = cat.split("train"), cat.split("test")
        for i in range(copies):
            adapter = reg.build(f"{method}_s{i}", device="cpu", source="native", profile=profile)
            adapter.fit(train)
            evaluate(test, adapter.predict(test))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="patchcore")
    ap.add_argument("--copies", type=int, default=5, help="seeds per category (x2 categories)")
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()

    from orchestrator.data import load_dataset
    from orchestrator.registry import load_registry

    load_dataset("synthetic")  # generate the cache outside the timings
    base = load_registry().get(args.method)
    with tempfile.TemporaryDirectory(prefix="survey-bench-") as tmp:
        tmp_path = Path(tmp)
        entries = {}
        for i in range(args.copies):
            entries[f"{args.method}_s{i}"] = {
                "adapter": base.adapter,
                "params": {**base.params, "seed": i},
                "profiles": base.profiles,
                "resources": {
                    "cpu": base.resources.cpu,
                    "gpu": base.resources.gpu,
                    "memory_gb": base.resources.memory_gb,
                },
                "default": False,
            }
        registry = tmp_path / "bench_registry.yaml"
        registry.write_text(yaml.safe_dump({"methods": entries}))
        methods = ",".join(entries)
        cmd = [
            sys.executable,
            "-m",
            "orchestrator",
            "survey",
            "--methods",
            methods,
            "--registry",
            str(registry),
            "--profile",
            args.profile,
            "--source",
            "native",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--experiment",
            "bench",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        survey_s = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        tail = proc.stdout.strip().splitlines()
        print("\n".join(tail[-12:]))
        direct_s = direct(args.method, args.copies, args.profile, registry)
    n = 2 * args.copies
    print(f"\n{n} trials ({args.method}, {args.profile} profile, synthetic dataset)")
    print(f"orchestrate survey (Ray Tune + MLflow + artifacts + reports): {survey_s:8.1f} s")
    print(f"direct fit/predict/evaluate in one process:                   {direct_s:8.1f} s")
    print(f"overhead fraction: {(survey_s - direct_s) / direct_s:+.1%} (goal <= 10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
