"""Backbone ImageNet weights: list what the methods use, import a file.

Backbone weights are found in this order: the config's weights_path, the torch hub cache
($TORCH_HOME/hub/checkpoints, torchvision's file names, hash-checked), weights an installed
package ships (EfficientNet-Lite0), torchvision's download.

``orchestrate weights``: which backbone weights the methods use, where they are, and
importing a weights file for an air-gapped site.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import command


def register(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "weights", __doc__)
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    lp = wsub.add_parser("list", help="every backbone a registry entry or profile uses")
    lp.add_argument("--registry", type=Path, default=None, help="a user registry merged in")
    lp.set_defaults(func=run_list)
    ip = wsub.add_parser(
        "import",
        help="verify a state dict against the architecture, copy it into the hub cache",
    )
    ip.add_argument("file", type=Path, help="a state dict file (.pth)")
    ip.add_argument("--backbone", required=True, help="e.g. wide_resnet50_2, efficientnet_lite0")
    ip.set_defaults(func=run_import)


def backbone_uses(registry) -> dict[str, list[str]]:
    """``backbone -> ["method/profile", ...]`` for every pretrained backbone; a label ends in
    ``(native)`` or ``(upstream)`` when only that source uses the backbone."""
    uses: dict[str, list[str]] = {}
    for name, entry in registry.methods.items():
        if not entry.available:
            continue
        cls = entry.adapter_class()
        sources = [s for s in ("native", "upstream") if s in cls.sources]
        for profile in ["paper", *entry.profiles]:
            config = entry.resolved_config(profile)
            by_source = {s: {b[0] for b in cls.backbones(config, s) if b[1]} for s in sources}
            for backbone in sorted(set().union(*by_source.values())):
                users = [s for s in sources if backbone in by_source[s]]
                label = f"{name}/{profile}"
                if len(users) < len(sources):
                    label += f" ({users[0]})"
                uses.setdefault(backbone, []).append(label)
    return uses


def run_list(args: argparse.Namespace) -> int:
    from adapters.common.weights import checkpoints_dir, find_weights, weights_spec
    from orchestrator.errors import UserError
    from orchestrator.registry import load_registry

    uses = backbone_uses(load_registry(args.registry))
    rows = []
    for backbone in sorted(uses):
        try:
            spec = weights_spec(backbone)
            found = find_weights(backbone)
        except UserError as exc:
            rows.append((backbone, "-", str(exc).split(" (")[0], "", ", ".join(uses[backbone])))
            continue
        where = "not found"
        if found:
            where = str(found.path) if found.source == "hub_cache" else found.source
        expected = f"({spec.hash_prefix}...)" if spec.hash_prefix else "(name only)"
        sha = found.sha256[:16] if found else expected
        rows.append((backbone, spec.file_name, where, sha, ", ".join(uses[backbone])))
    header = ("backbone", "file", "found", "sha256", "used by")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    missing = sum(r[2] == "not found" for r in rows)
    print(f"\nhub cache: {checkpoints_dir()}")
    if missing:
        print(
            f"{missing} not found here: torchvision downloads them on first use where a model "
            "hub is reachable; offline, `orchestrate weights import FILE --backbone NAME`"
        )
    return 0


def run_import(args: argparse.Namespace) -> int:
    from adapters.common.weights import import_weights, sha256_of

    dst = import_weights(args.file, args.backbone)
    print(f"imported {args.file} as {dst} (sha256 {sha256_of(dst)[:16]}...)")
    return 0
