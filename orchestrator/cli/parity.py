"""``orchestrate parity``: the upstream and native sources of a method on the same data.

Both sources are built from the same registry entry, profile and overrides (so the same
backbone weights: same name, ``pretrained``/``weights_path`` and ``seed``), fitted on the same
training images and evaluated on the same test images. Printed per source: image AUROC
(all, logical, structural), pixel AUROC, fit and predict time; then the differences and the
Pearson correlation of the image scores.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from orchestrator.errors import UserError

METHODS = ("patchcore", "simplenet", "draem", "csflow", "revdist")
#: Goals from the parity issue: (max |dAUROC|, min score correlation or None).
GOALS: dict[str, tuple[float, float | None]] = {
    "patchcore": (0.01, 0.99),
    "simplenet": (0.03, None),
    "draem": (0.05, None),  # stochastic training (Perlin/texture synthesis) at tiny settings
    "csflow": (0.05, None),  # native: torchvision EfficientNet; upstream: efficientnet_pytorch
    "revdist": (0.05, None),  # stochastic training (noise patches); different student networks
}
#: The AUROCs the goal applies to.
GOAL_KEYS = ("image_auroc", "pixel_auroc")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="compare a method's upstream and native sources on the same data and weights",
        description=(
            "Fits the vendored upstream code and the native implementation of METHOD with the "
            "same config and backbone weights on one category, then prints image AUROC, pixel "
            "AUROC, timings, the AUROC differences and the correlation of image scores. Needs "
            "the checkout (orchestrate vendor sync METHOD)."
        ),
    )
    p.add_argument("method", choices=METHODS, help="method to compare")
    p.add_argument(
        "--dataset", default="synthetic", help="synthetic (default), loco, mvtec or a folder"
    )
    p.add_argument("--dataset-root", default=None, help="root folder of loco/mvtec/custom data")
    p.add_argument("--category", default="flat_connector", help="category (default flat_connector)")
    p.add_argument("--profile", default="quick", help="registry profile: quick (default) or paper")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (YAML value), repeatable, e.g. --set coreset_percentage=0.25",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--max-train", type=int, default=None, help="use only the first N training images"
    )
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: yaml(v)}``."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def compare(
    method: str,
    category,
    overrides: dict[str, Any] | None = None,
    profile: str = "quick",
    device: str = "cpu",
    max_train: int | None = None,
) -> dict[str, Any]:
    """Fit both sources on ``category``; metrics per source, differences and correlation."""
    import numpy as np

    from orchestrator.metrics import evaluate
    from orchestrator.registry import load_registry

    registry = load_registry()
    train, test = category.split("train"), category.split("test")
    if max_train:
        train = train[:max_train]
    out: dict[str, Any] = {"method": method, "category": category.name}
    scores = {}
    for source in ("upstream", "native"):
        adapter = registry.build(method, overrides, device=device, source=source, profile=profile)
        t0 = time.perf_counter()
        adapter.fit(train)
        t1 = time.perf_counter()
        preds = adapter.predict(test)
        t2 = time.perf_counter()
        m = evaluate(test, preds)
        keep = ("image_auroc", "image_auroc_logical", "image_auroc_structural", "pixel_auroc")
        out[source] = {k: m[k] for k in keep if k in m} | {"fit_s": t1 - t0, "predict_s": t2 - t1}
        out[source]["upstream_commit"] = adapter.upstream_commit
        scores[source] = preds.image_scores
    up, nat = out["upstream"], out["native"]
    out["delta"] = {k: nat[k] - up[k] for k in up if k in nat and "auroc" in k}
    out["score_correlation"] = float(np.corrcoef(scores["upstream"], scores["native"])[0, 1])
    return out


def run(args: argparse.Namespace) -> int:
    from orchestrator.data import load_dataset

    overrides = parse_overrides(args.overrides)
    cats = load_dataset(args.dataset, args.dataset_root, [args.category])
    res = compare(args.method, cats[0], overrides, args.profile, args.device, args.max_train)
    what = overrides or "no overrides"
    print(f"parity {res['method']} on {res['category']} (profile {args.profile}, {what})")
    keys = [k for k in res["upstream"] if k != "upstream_commit"]
    print(f"{'':10}" + "".join(f"{k:>24}" for k in keys))
    for source in ("upstream", "native"):
        print(f"{source:10}" + "".join(f"{res[source][k]:>24.4f}" for k in keys))
    print(f"{'delta':10}" + "".join(f"{res['delta'].get(k, float('nan')):>24.4f}" for k in keys))
    print(f"image score correlation: {res['score_correlation']:.4f}")
    ok, worst = goal_met(args.method, res)
    max_d, min_r = GOALS[args.method]
    goal = f"|dAUROC| <= {max_d} (image, pixel)" + (f", correlation >= {min_r}" if min_r else "")
    print(f"goal {goal}: {'met' if ok else 'NOT met'} (max |dAUROC| {worst:.4f})")
    return 0 if ok else 1


def goal_met(method: str, res: dict[str, Any]) -> tuple[bool, float]:
    """Whether ``compare``'s result meets the method's goal; and the worst |dAUROC|.

    The goal applies to pooled image AUROC and pixel AUROC (what the parity issue names); the
    logical/structural subsets are printed too but are not part of the goal: with 20 anomalous
    and 20 good images each, every pair ranked the other way moves them by 0.0025.
    """
    max_d, min_r = GOALS[method]
    worst = max(abs(res["delta"][k]) for k in GOAL_KEYS if k in res["delta"])
    ok = worst <= max_d and (min_r is None or res["score_correlation"] >= min_r)
    return ok, worst
