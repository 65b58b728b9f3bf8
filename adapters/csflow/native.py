"""CS-Flow, native source: a torchvision EfficientNet and the flow of adapters.csflow.networks.

fit: the frozen extractor embeds each training image at three scales; ``pretrained: false``
first estimates its batch-norm statistics on the training images (adapters.common
.bn_calibration). The flow is trained on the three maps by maximum likelihood for
``meta_epochs * sub_epochs`` epochs (Adam, ``lr_init``, eps 1e-4, weight decay 1e-5,
gradient-norm clipping at 1), batches in a seeded random order. The upstream engine
(adapters.csflow.upstream) runs this same loop around upstream's extractor, flow and loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adapters.common import build_backbone, seed_everything
from adapters.common.bn_calibration import calibrate_batchnorm
from adapters.common.engine import NetworkEngine
from adapters.csflow import networks
from adapters.csflow.adapter import backbone_name
from orchestrator.data.types import SampleSet


class NativeExtractor(networks.ScaledExtractor):
    """The frozen EfficientNet up to the last block of its stride-32 stage before the last:
    torchvision's ``features[:7]``, or blocks ``0..k`` of an efficientnet_pytorch-layout
    network (EfficientNet-Lite)."""

    def __init__(self, name: str, pretrained: bool, weights_path: str | None, seed: int):
        super().__init__()
        net = build_backbone(backbone_name(name, "native"), pretrained, weights_path, seed)
        if hasattr(net, "_blocks"):  # efficientnet_pytorch layout
            last, self.channels = networks.last_stage_before_top(net._blocks)
            self.body = nn.Sequential(
                net._conv_stem, net._bn0, net._swish, *list(net._blocks)[: last + 1]
            )
        else:
            self.body = net.features[:7]
            self.channels = int(self.body[6][-1].out_channels)
        self.freeze()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class NativeCSFlow(NetworkEngine):
    """The native engine behind ``adapters.csflow.CSFlow`` (networks built by fit/set_state).

    ``_networks``, ``_forward`` and ``_loss`` are what the upstream engine replaces.
    """

    def __init__(self, config: dict, device: torch.device, checkout: Path | None = None):
        super().__init__(config, device, checkout)
        self.extractor: nn.Module | None = None
        self.flow: nn.Module | None = None
        self.loss_history_: list[float] = []

    def _networks(self) -> tuple[nn.Module, nn.Module]:
        """The extractor and the (untrained) flow."""
        cfg, seed = self.config, int(self.config["seed"])
        extractor = NativeExtractor(
            str(cfg["extractor"]), bool(cfg["pretrained"]), cfg.get("weights_path"), seed
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            flow = networks.CrossScaleFlow(
                extractor.channels,
                int(cfg["n_coupling_blocks"]),
                int(cfg["fc_internal"]),
                list(cfg["kernel_sizes"]),
                float(cfg["clamp"]),
            )
        return extractor, flow

    def _forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latents per scale and log|det J| of a batch of the three feature maps."""
        assert self.flow is not None
        return self.flow(feats)

    def _loss(self, z: list[torch.Tensor], logdet: torch.Tensor) -> torch.Tensor:
        return networks.nll_loss(z, logdet)

    def build(self) -> None:
        self.extractor, self.flow = (m.to(self.device) for m in self._networks())

    def _features(self, data: SampleSet) -> list[torch.Tensor]:
        """Backbone maps of all images per scale, on the CPU: ``[[N, C, h_s, w_s]] * 3``."""
        assert self.extractor is not None
        parts: list[list[torch.Tensor]] = [[], [], []]
        for x in self.batches(data):
            for k, f in enumerate(self.extractor(x)):
                parts[k].append(f.cpu())
        return [torch.cat(p) for p in parts]

    def fit(self, train: SampleSet) -> None:
        cfg, seed = self.config, int(self.config["seed"])
        seed_everything(seed)
        self.build()
        assert self.flow is not None and self.extractor is not None
        if not cfg.get("pretrained"):
            calibrate_batchnorm(self.extractor, self.batches(train))
        feats = self._features(train)
        opt = torch.optim.Adam(
            self.flow.parameters(), lr=float(cfg["lr_init"]), eps=1e-4, weight_decay=1e-5
        )
        epochs = int(cfg["meta_epochs"]) * int(cfg["sub_epochs"])
        bs = int(cfg["batch_size"])
        gen = torch.Generator().manual_seed(seed)
        self.flow.train()
        self.loss_history_ = []
        for e in tqdm(range(epochs), desc="csflow", disable=not cfg.get("progress")):
            order = torch.randperm(len(train), generator=gen)
            losses = []
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                batch = [f[idx].to(self.device) for f in feats]
                opt.zero_grad()
                loss = self._loss(*self._forward(batch))
                loss.backward()
                nn.utils.clip_grad_norm_(self.flow.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            self.loss_history_.append(float(np.mean(losses)))
            self.epoch_end(e + 1, epochs, self.loss_history_[-1])
        self.flow.eval()

    @torch.no_grad()
    def _latents(self, data: SampleSet) -> list[torch.Tensor]:
        assert self.flow is not None
        self.flow.eval()
        feats = self._features(data)
        bs = int(self.config["batch_size"])
        out: list[list[torch.Tensor]] = [[], [], []]
        for s in range(0, len(data), bs):
            z, _ = self._forward([f[s : s + bs].to(self.device) for f in feats])
            for k in range(3):
                out[k].append(z[k].cpu())
        return [torch.cat(o) for o in out]

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        """Mean ``z**2 / 2`` per image; channel mean of ``z**2`` at the largest scale."""
        z = self._latents(test)
        return networks.image_scores(z).double().numpy(), networks.anomaly_maps(z).float()

    def features(self, images: SampleSet) -> np.ndarray:
        """The three scales' latents at the largest scale, concatenated ``[N, 3 C, h, w]``."""
        z = self._latents(images)
        size = z[0].shape[-2:]
        parts = [z[0]] + [
            F.interpolate(zk, size=size, mode="bilinear", align_corners=False) for zk in z[1:]
        ]
        return torch.cat(parts, dim=1).numpy()

    def trained(self) -> dict[str, nn.Module]:
        assert self.flow is not None
        return {"flow": self.flow}

    def frozen(self) -> dict[str, nn.Module]:
        assert self.extractor is not None
        return {"extractor": self.extractor}
