"""Run the adapter conformance kit on a registered method, one line per named check.

Builds METHOD from the registry (its profile, default quick, and --set overrides) with the
source asked for and runs every check of adapters.conformance on a tiny generated category:
fit/predict shapes, maps at the evaluation size, anomalies scored higher, save/load,
determinism, refit, predicting a subset, predict never reading labels or masks, CUDA against
CPU. Prints pass / fail / skip (with the reason) per check; exit 0 when none fails.

For a plugin's author: the same checks as `pytest` cases come from
``adapters.conformance.parametrize_checks`` (see adapters/README.md).
"""

from __future__ import annotations

import argparse

from orchestrator.cli.common import add_method_args, command


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "check", __doc__)
    p.add_argument("method", help="a registered method (`orchestrate methods`)")
    p.add_argument(
        "--source",
        choices=("auto", "upstream", "native"),
        default="auto",
        help="which source to check (default auto: upstream when its checkout is usable)",
    )
    add_method_args(p, "epochs=2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapters.conformance import SkipCheck, conformance_checks
    from orchestrator.cli.parity import parse_overrides
    from orchestrator.registry import load_registry
    from orchestrator.vendor import resolve_source

    reg = load_registry(args.registry)
    entry = reg.get(args.method)
    if not entry.available:
        from orchestrator.errors import UserError

        raise UserError(
            f"method {args.method!r} is not available ({entry.import_error or entry.status})"
        )
    overrides = parse_overrides(args.sets)
    entry.resolved_config(args.profile, overrides)  # unknown keys: one line, before any fit
    source, _ = resolve_source(entry, entry.adapter_class(), args.source, args.allow_dirty)

    def build():
        return reg.build(
            args.method, overrides, args.device, source, args.profile, args.allow_dirty
        )

    checks = conformance_checks(build, source=source, device=args.device, name=args.method)
    print(f"check {args.method} ({source} source, profile {args.profile}): {len(checks)} checks")
    failed = skipped = 0
    for check in checks:
        try:
            check.run()
        except SkipCheck as exc:
            skipped += 1
            print(f"skip  {check.name}: {exc}")
        except AssertionError as exc:
            failed += 1
            reason = str(exc).removeprefix(f"conformance check '{check.id}' failed: ")
            print(f"FAIL  {check.name}: {' '.join(reason.split())[:300]}")
        else:
            print(f"pass  {check.name}")
    print(f"{len(checks) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0
