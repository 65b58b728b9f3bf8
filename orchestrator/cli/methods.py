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
    from orchestrator.vendor import checkout_state_at

    reg = load_registry(args.registry)
    header = f"{'method':12s} {'status':14s} {'sources':22s} {'pin':13s} {'license':11s} resources"
    print(header)
    print("-" * len(header))
    for name, e in reg.methods.items():
        if e.available:
            cls = e.adapter_class()
            srcs = []
            if "native" in cls.sources:
                srcs.append("native")
            if "upstream" in cls.sources and e.repo:
                st = checkout_state_at(e.checkout_dir, e.commit)
                srcs.append(
                    "upstream"
                    + ("" if st.usable else "(not synced)" if not st.present else "(unusable)")
                )
            status = "available" + ("" if e.default else "*")
        else:
            srcs = ["-"]
            status = "unavailable" if e.status == "available" else "planned"
        pin = e.commit[:12] if e.commit else "-"
        r = e.resources
        res = f"gpu {r.gpu:g}, cpu {r.cpu:g}, {r.memory_gb:g} GB"
        print(f"{name:12s} {status:14s} {', '.join(srcs):22s} {pin:13s} {str(e.license):11s} {res}")
    print("\n* not part of a default survey (select it with --methods)")
    return 0
