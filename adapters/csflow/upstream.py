"""CS-Flow, upstream source: drives the unmodified upstream checkout (marco-rudolph/cs-flow).

Upstream is configured by its module-level ``config.py``; we import the checkout's
``config``, ``freia_funcs``, ``model`` and ``utils`` modules in isolation
(adapters.common.upstream) and set the attributes of *that* config module from our adapter
config before building anything: no file is edited. ``EfficientNet.from_pretrained``
(downloads weights) is swapped at run time for our network with weights from
adapters.common.weights (see UpstreamExtractor). The engine (UpstreamCSFlow) runs the native
engine's training loop (upstream's train.py, without its test evaluation) around upstream's
extractor, ``get_cs_flow_model``, ``nf_forward`` and ``get_loss``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from adapters.common import build_backbone, seed_everything, upstream_modules
from adapters.csflow.adapter import backbone_name
from adapters.csflow.native import NativeCSFlow
from adapters.csflow.networks import ScaledExtractor, last_stage_before_top
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


class UpstreamExtractor(ScaledExtractor):
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
        self.freeze()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fe.eff_ext(x, use_layer=self.layer)


class UpstreamCSFlow(NativeCSFlow):
    """The upstream engine behind ``adapters.csflow.CSFlow``: the native engine's loop around
    upstream's extractor, flow and loss."""

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        super().__init__(config, device, checkout)
        self.mods = load_upstream(checkout)

    def _networks(self) -> tuple[nn.Module, nn.Module]:
        cfg, seed = self.config, int(self.config["seed"])
        h, w = self.size
        extractor = UpstreamExtractor(
            self.mods,
            backbone_name(str(cfg["extractor"]), "upstream"),
            bool(cfg["pretrained"]),
            cfg.get("weights_path"),
            seed,
        )
        configure(
            self.mods["config"],
            cfg,
            self.size,
            extractor.channels,
            (h // 32, w // 32),
            str(self.device),
        )
        seed_everything(seed)  # upstream's permutations seed numpy themselves
        return extractor, self.mods["model"].get_cs_flow_model(input_dim=extractor.channels)

    def _forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        z, jac = self.mods["model"].nf_forward(self.flow, feats)
        return list(z), sum(jac)

    def _loss(self, z: list[torch.Tensor], logdet: torch.Tensor) -> torch.Tensor:
        return self.mods["utils"].get_loss(z, [logdet])
