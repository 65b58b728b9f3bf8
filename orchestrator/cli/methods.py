"""``orchestrate methods``: the registered methods, their sources and pins."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list registered methods, available sources and pins")
    p.add_argument("--registry", type=Path, default=None, help="a user registry merged over ours")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator.registry import load_registry

    reg = load_registry(args.registry)
    rows = [_row(name, e) for name, e in reg.methods.items()]
    header = ("method", "status", "sources", "pin", "license", "resources")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(f"{c:{w}s}" for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    print(line(header))
    print("-" * len(line(header)))
    for r in rows:
        print(line(r))
    print("\n* not part of a default survey (select it with --methods)")
    broken = [(n, e) for n, e in reg.methods.items() if e.import_error]
    for name, e in broken:
        print(f"broken: {name} ({e.origin}): {e.adapter}: {e.import_error}")
    return 0


def _row(name: str, e) -> tuple[str, ...]:
    from orchestrator.vendor import checkout_state_at

    if e.available:
        cls = e.adapter_class()
        srcs = []
        if "native" in cls.sources:
            srcs.append("native")
        if "upstream" in cls.sources and e.repo:
            st = checkout_state_at(e.checkout_dir, e.commit)
            note = "" if st.usable else "(not synced)" if not st.present else "(unusable)"
            srcs.append("upstream" + note)
        status = "available" + ("" if e.default else "*")
    else:
        srcs = ["-"]
        status = "broken" if e.import_error else "planned"
    r = e.resources
    res = f"gpu {r.gpu:g}, cpu {r.cpu:g}, {r.memory_gb:g} GB"
    pin = e.commit[:12] if e.commit else "-"
    return (name, status, ", ".join(srcs), pin, e.license or "-", res)
