"""Start-up time of the `orchestrate` commands that neither train nor evaluate.

Runs each command ``--repeats`` times in a fresh process (``python -m orchestrator ...``,
output discarded) and prints its median wall time, its ratio against ``python -c pass``
measured in the same run, and whether it meets the goal (under one second).

    .venv/bin/python benchmarks/startup_bench.py [--repeats 5] [--subcommand-help]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

#: (label, argv after ``orchestrate``); the goal applies to every one of them.
COMMANDS: tuple[tuple[str, list[str]], ...] = (
    ("--help", ["--help"]),
    ("methods", ["methods"]),
    ("vendor status", ["vendor", "status"]),
    ("datasets list", ["datasets", "list"]),
    ("weights list", ["weights", "list"]),
)
GOAL_S = 1.0


def seconds(argv: list[str]) -> float:
    """Wall time of one fresh process running ``argv`` (output discarded)."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per command")
    ap.add_argument(
        "--subcommand-help",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time `orchestrate <command> --help` for every subcommand",
    )
    args = ap.parse_args()

    from orchestrator.cli import COMMANDS as SUBCOMMANDS

    commands = list(COMMANDS)
    if args.subcommand_help:
        commands += [(f"{name} --help", [name, "--help"]) for name in SUBCOMMANDS]
    runs = {"pass": [sys.executable, "-c", "pass"]}
    runs |= {label: [sys.executable, "-m", "orchestrator", *argv] for label, argv in commands}
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.repeats):  # rounds over every command: a change of load hits all alike
        for label, argv in runs.items():
            times[label].append(seconds(argv))
    median = {label: statistics.median(t) for label, t in times.items()}
    reference = median.pop("pass")
    width = max(len(label) for label in median) + len("orchestrate ")
    print(f"median of {args.repeats} fresh processes each; `python -c pass`: {reference:.3f} s")
    print(f"{'command':<{width}}  {'median s':>8}  {'x pass':>7}  goal < {GOAL_S:g} s")
    for label, t in median.items():
        verdict = "ok" if t < GOAL_S else "SLOW"
        print(f"{'orchestrate ' + label:<{width}}  {t:8.3f}  {t / reference:7.1f}  {verdict}")
    fast = sum(t < GOAL_S for t in median.values())
    print(f"{fast}/{len(median)} commands start in under {GOAL_S:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
