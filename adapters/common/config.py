"""Config defaults that adapter classes take at import (no torch here, as in
adapters.common.engine: importing an adapter class stays light)."""

from __future__ import annotations

from typing import Any


def embedder_defaults(dim: int) -> dict[str, Any]:
    """Upstream's defaults of the keys ``build_embedder`` reads (WideResNet-50 ``layer2`` and
    ``layer3`` with ImageNet weights, 3 x 3 patches), ``dim`` for both embedding dimensions
    (adapters.common.patches; PatchCore's and SimpleNet's ``default_config``)."""
    return {
        "backbone": "wide_resnet50_2",
        "layers": ["layer2", "layer3"],
        "pretrained": True,
        "weights_path": None,
        "pretrain_embed_dimension": dim,
        "target_embed_dimension": dim,
        "patchsize": 3,
    }
