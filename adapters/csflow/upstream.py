"""Driving the unmodified upstream CS-Flow checkout (vendor/csflow, marco-rudolph/cs-flow).

Upstream is configured by its module-level ``config.py``; we import the checkout's
``config``, ``freia_funcs`` and ``model`` modules in isolation (adapters.common.upstream) and
set the attributes of *that* config module from our adapter config before building anything:
no file is edited. ``EfficientNet.from_pretrained`` (downloads weights) is swapped at run
time for our network with weights from adapters.common.weights (see UpstreamExtractor).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from adapters.common import upstream_modules
from orchestrator.errors import UserError


def load_upstream(checkout: Path) -> dict[str, ModuleType]:
    """The checkout's config, freia_funcs, model and utils modules."""
    try:
        import efficientnet_pytorch  # noqa: F401
    except ImportError as exc:
        raise UserError(
            "csflow upstream source needs efficientnet_pytorch (pip install efficientnet_pytorch)"
        ) from exc
    names = ["config", "freia_funcs", "model", "utils"]
    return upstream_modules(Path(checkout), names)


def configure(
    config_module: ModuleType,
    cfg: dict[str, Any],
    size: tuple[int, int],
    n_feat: int,
    map_size: tuple[int, int],
    device: str,
) -> None:
    """Set upstream's module-level configuration from our adapter config."""
    c = config_module
    c.device = device
    c.img_size = size
    c.img_dims = [3, *size]
    c.n_scales = 3
    c.clamp = float(cfg["clamp"])
    c.n_coupling_blocks = int(cfg["n_coupling_blocks"])
    c.fc_internal = int(cfg["fc_internal"])
    c.lr_init = float(cfg["lr_init"])
    c.kernel_sizes = list(cfg["kernel_sizes"])
    c.n_feat = n_feat
    c.map_size = map_size
    c.batch_size = int(cfg["batch_size"])
    c.meta_epochs, c.sub_epochs = int(cfg["meta_epochs"]), int(cfg["sub_epochs"])
    c.pre_extracted = True
    c.verbose = False
    c.hide_tqdm_bar = True
    c.save_model = False


class UpstreamExtractor(nn.Module):
    """Upstream's ``FeatureExtractor`` (its ``eff_ext``) around our network.

    Its constructor calls ``EfficientNet.from_pretrained('efficientnet-b5')``, which would
    download; for the time of that call ``from_pretrained`` is swapped for a function that
    returns the network adapters.common.weights builds (the configured ``efficientnet-bN`` or
    EfficientNet-Lite, same layout, weights from the one resolver or seeded random).
    """

    def __init__(
        self,
        mods: dict[str, ModuleType],
        name: str,
        pretrained: bool,
        weights_path: str | None,
        seed: int,
    ):
        super().__init__()
        from adapters.common import build_backbone
        from adapters.csflow.adapter import last_stage_before_top

        model = mods["model"]
        eff = model.EfficientNet
        net = build_backbone(name, pretrained, weights_path, seed)
        original = eff.__dict__["from_pretrained"]
        eff.from_pretrained = staticmethod(lambda *a, **k: net)  # type: ignore[method-assign]
        try:
            self.fe = model.FeatureExtractor()
        finally:
            eff.from_pretrained = original
        # upstream uses block 35 of B5 (the last block of the 304-channel stage); the same
        # stage's last block for other networks:
        self.layer, self.channels = last_stage_before_top(self.fe.feature_extractor._blocks)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        out = []
        for s in range(3):  # as upstream's FeatureExtractor.forward (nearest resize)
            xs = F.interpolate(x, size=(h // 2**s, w // 2**s)) if s > 0 else x
            out.append(self.fe.eff_ext(xs, use_layer=self.layer))
        return out
