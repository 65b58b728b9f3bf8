"""Overhead of `orchestrate survey` (Ray Tune + MLflow + reports) over the same work done
directly.

A 10-trial survey (``--methods`` copies of one method with different seeds x the synthetic
categories) through the real command, against the same calls made directly in one process,
one after another. Two references, measured in the same loop:

- *bare*: fit, predict the test set, evaluate it (what one would script without any
  protocol);
- *same work*: the bare calls plus what every trial's numbers need under the validation
  protocol (orchestrator.data.validation): the validation set (once per category), its
  predictions, the bounded sigmoid and the decision thresholds fitted on them.

The reference runs as a fresh process too (``--direct-only``: a script doing the same work,
interpreter start, imports and data loading included, as the survey's wall time includes
them). The overhead is the survey's extra wall time over that script (goal <= 10 %); the
fractions over its loops alone (same work, bare) are printed too: the first shows what the
start-up costs, the second what the validation protocol itself costs.

    .venv/bin/python benchmarks/survey_bench.py [--method patchcore] [--copies 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def direct(method: str, copies: int, profile: str, registry: Path) -> tuple[float, float]:
    """The same fits, predictions and metrics in this process, one after another:
    ``(bare seconds, same-work seconds)``."""
    from orchestrator.calibration import fit_calibrator
    from orchestrator.data import load_dataset
    from orchestrator.data.validation import protocol_sets
    from orchestrator.metrics import evaluate
    from orchestrator.models import validation_thresholds
    from orchestrator.registry import load_registry

    reg = load_registry(registry)
    bare = protocol = 0.0
    with tempfile.TemporaryDirectory(prefix="direct-") as tmp:
        for cat in load_dataset("synthetic"):
            t0 = time.perf_counter()
            train, validation = protocol_sets(cat, Path(tmp) / cat.name)
            protocol += time.perf_counter() - t0
            test = cat.split("test")
            for i in range(copies):
                name = f"{method}_s{i}"
                adapter = reg.build(name, device="cpu", source="native", profile=profile)
                t0 = time.perf_counter()
                adapter.fit(train)
                evaluate(test, adapter.predict(test))
                t1 = time.perf_counter()
                val = adapter.predict(validation)
                fit_calibrator("bounded_sigmoid", val.image_scores, validation.is_anomalous)
                validation_thresholds(validation, val)
                bare += t1 - t0
                protocol += time.perf_counter() - t1
    return bare, bare + protocol


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="patchcore")
    ap.add_argument("--copies", type=int, default=5, help="seeds per category (x2 categories)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--direct-only", type=Path, help=argparse.SUPPRESS)  # the reference's process
    args = ap.parse_args()
    if args.direct_only:  # run by main() below as a fresh process, like the survey
        bare_s, same_s = direct(args.method, args.copies, args.profile, args.direct_only)
        print(json.dumps({"bare": bare_s, "same": same_s}))
        return 0

    from orchestrator.data import load_dataset
    from orchestrator.registry import load_registry

    load_dataset("synthetic")  # generate the cache outside the timings
    # the survey writes each category's validation set once into the cache: start without
    # them, as the direct script writes its own (a cache, rebuilt when needed)
    from orchestrator.paths import cache_dir

    shutil.rmtree(cache_dir() / "validation", ignore_errors=True)
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
        ref = [sys.executable, __file__, "--method", args.method, "--copies", str(args.copies)]
        ref += ["--profile", args.profile, "--direct-only", str(registry)]
        t0 = time.perf_counter()
        proc = subprocess.run(ref, capture_output=True, text=True, check=True)
        script_s = time.perf_counter() - t0
        loops = json.loads(proc.stdout.strip().splitlines()[-1])
    bare_s, same_s = loops["bare"], loops["same"]
    n = 2 * args.copies
    print(f"\n{n} trials ({args.method}, {args.profile} profile, synthetic dataset), wall seconds")
    print(f"orchestrate survey, a fresh process (Ray Tune + MLflow + reports): {survey_s:7.1f}")
    print(f"direct script, a fresh process (imports, data, the same work):     {script_s:7.1f}")
    print(f"  of which its loop, same work (+ validation protocol):            {same_s:7.1f}")
    print(f"  of which its loop, bare fit / predict test / evaluate:           {bare_s:7.1f}")
    overhead = (survey_s - script_s) / script_s
    print(f"overhead over the direct script: {overhead:+.1%} (goal <= 10 %)")
    print(f"over the same work's loop:       {(survey_s - same_s) / same_s:+.1%}")
    print(f"over the bare loop:              {(survey_s - bare_s) / bare_s:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
