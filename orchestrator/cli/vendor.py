"""``orchestrate vendor sync|status``: pinned upstream checkouts in vendor/."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vendor", help="clone / inspect the pinned upstream repositories")
    vsub = p.add_subparsers(dest="vendor_command", metavar="ACTION", required=True)
    s = vsub.add_parser("sync", help="clone each upstream repository into vendor/<name> at its pin")
    s.add_argument("names", nargs="*", help="methods to sync (default: all with a repository)")
    s.add_argument(
        "--mirror",
        default=None,
        help="local mirror folder or URL holding <owner>/<name>[.git] "
        "(also $ORCHESTRATOR_VENDOR_MIRROR), for air-gapped sites",
    )
    s.add_argument("--registry", type=Path, default=None)
    s.set_defaults(func=_sync)
    st = vsub.add_parser("status", help="present / at pin / clean / HEAD per method")
    st.add_argument("names", nargs="*", help="methods to show (default: all with a repository)")
    st.add_argument("--registry", type=Path, default=None)
    st.set_defaults(func=_status)


def _entries(args):
    from orchestrator.registry import load_registry

    reg = load_registry(args.registry)
    names = getattr(args, "names", None) or [n for n, e in reg.methods.items() if e.repo]
    return [reg.get(n) for n in names]


def _sync(args: argparse.Namespace) -> int:
    from orchestrator.vendor import sync

    for line in sync(_entries(args), mirror=args.mirror):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    from orchestrator.vendor import checkout_state_at

    yes = {True: "yes", False: "no"}
    print(f"{'method':12s} {'present':8s} {'at pin':7s} {'clean':6s} {'HEAD':13s} note")
    bad = 0
    for e in _entries(args):
        if not e.repo:
            print(f"{e.name:12s} {'-':8s} {'-':7s} {'-':6s} {'-':13s} no upstream repository")
            continue
        st = checkout_state_at(e.checkout_dir, e.commit)
        bad += not st.usable
        print(
            f"{e.name:12s} {yes[st.present]:8s} {yes[st.at_pin]:7s} {yes[st.clean]:6s} "
            f"{(st.head or '-')[:12]:13s} {st.problem or 'ok'}"
        )
    return 0
