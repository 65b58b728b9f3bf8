"""CS-Flow (Rudolph et al., WACV 2022) behind the adapter contract.

fit: a frozen EfficientNet (``extractor``; paper: efficientnet-b5, the output of its
304-channel stage at stride 32) embeds each training image at ``image_size``, half and quarter
of it; the cross-scale flow is trained on these three maps by maximum likelihood (NLL of a
standard normal plus log-determinant) for ``meta_epochs * sub_epochs`` epochs with Adam
(``lr_init``, eps 1e-4, weight decay 1e-5) and gradient-norm clipping at 1, as upstream. No
selection on test data (upstream's per-meta-epoch test evaluation is not done).

predict: image score = mean of ``z**2 / 2`` over all latent entries of all three scales;
anomaly map = channel mean of ``z**2`` at the largest scale, bilinearly resized to the
evaluation size (both as upstream's train.py / evaluate.py).

``pretrained: false`` (tests): the random backbone's batch-norm statistics are estimated on
the training images first (adapters.common.bn_calibration), else its features vanish.

extract_features: the latents ``z`` of the three scales, bilinearly resized to the largest
scale and concatenated along channels, ``[N, 3 * C, H / 32, W / 32]`` (name "latents").

Sources: ``native`` (adapters.csflow.native, torchvision EfficientNet) and ``upstream``
(vendor/csflow's flow and extractor with efficientnet_pytorch, see adapters.csflow.upstream).
``image_size`` must be a multiple of 128 per axis (three scales at stride 32), as upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adapters.base import Adapter, FeatureMaps, Predictions, Resources
from adapters.common import as_size, batches, build_backbone, resolve_device, seed_everything
from adapters.common.bn_calibration import calibrate_batchnorm
from adapters.common.weights import canonical
from adapters.csflow import native
from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError


def native_backbone_name(extractor: str) -> str:
    """The backbone the native source builds: torchvision's ``efficientnet_bN`` for
    ``efficientnet-bN``; ``efficientnet_lite0`` (efficientnet_pytorch layout) for the Lite."""
    name = str(extractor)
    return name.replace("-", "_")


def upstream_backbone_name(extractor: str) -> str:
    """Upstream builds ``efficientnet_pytorch`` networks (``efficientnet-bN``); the Lite
    (same layout) is swapped in at run time."""
    return canonical(str(extractor))


def last_stage_before_top(blocks) -> tuple[int, int]:
    """Index of the last block of the stage before the last in an efficientnet_pytorch
    block list, and its channels: block 35 of B5 (304 channels), as upstream's ``eff_ext``."""
    outs = [b._block_args.output_filters for b in blocks]
    stage = sorted(set(outs))[-2]
    return max(i for i, o in enumerate(outs) if o == stage), int(stage)


class NativeExtractor(nn.Module):
    """The frozen EfficientNet up to the last block of its stride-32 stage before the last:
    torchvision's ``features[:7]``, or blocks ``0..k`` of an efficientnet_pytorch-layout
    network (EfficientNet-Lite)."""

    def __init__(self, name: str, pretrained: bool, weights_path: str | None, seed: int):
        super().__init__()
        net = build_backbone(native_backbone_name(name), pretrained, weights_path, seed)
        if hasattr(net, "_blocks"):  # efficientnet_pytorch layout
            last, self.channels = last_stage_before_top(net._blocks)
            self.body = nn.Sequential(
                net._conv_stem, net._bn0, net._swish, *list(net._blocks)[: last + 1]
            )
        else:
            self.body = net.features[:7]
            self.channels = int(self.body[6][-1].out_channels)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        scaled = [x] + [F.interpolate(x, size=(h // 2**s, w // 2**s)) for s in (1, 2)]
        return [self.body(xs) for xs in scaled]


class CSFlow(Adapter):
    name = "csflow"
    uses_weights_resolver = True
    default_resources = Resources(cpu=2, gpu=1, memory_gb=16)
    sources = ("upstream", "native")
    default_config: ClassVar[dict[str, Any]] = {
        "extractor": "efficientnet-b5",
        "pretrained": True,
        "weights_path": None,
        "image_size": 768,
        "n_coupling_blocks": 4,
        "clamp": 3.0,
        "fc_internal": 1024,
        "kernel_sizes": [3, 3, 3, 5],
        "lr_init": 2e-4,
        "meta_epochs": 4,
        "sub_epochs": 60,
        "batch_size": 16,
        "progress": False,
        "seed": 0,
    }

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        self.torch_device = resolve_device(str(device))
        h, w = self.size
        if h % 128 or w % 128:
            raise UserError(f"csflow: image_size must be a multiple of 128 per axis, got {(h, w)}")
        self.extractor: nn.Module | None = None
        self.flow: nn.Module | None = None

    @classmethod
    def backbones(cls, config, source: str) -> list[tuple[str, bool, str | None, int]]:
        name = str(config["extractor"])
        name = upstream_backbone_name(name) if source == "upstream" else native_backbone_name(name)
        return super().backbones({**config, "backbone": name}, source)

    @property
    def size(self) -> tuple[int, int]:
        return as_size(self.config["image_size"])

    # -- networks ----------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, seed = self.config, int(self.config["seed"])
        h, w = self.size
        map_size = (h // 32, w // 32)
        if self.source == "upstream":
            from adapters.csflow import upstream

            mods = upstream.load_upstream(self.record_checkout())
            self._mods = mods
            self.extractor = upstream.UpstreamExtractor(
                mods,
                upstream_backbone_name(str(cfg["extractor"])),
                bool(cfg["pretrained"]),
                cfg.get("weights_path"),
                seed,
            )
            upstream.configure(
                mods["config"],
                cfg,
                self.size,
                self.extractor.channels,
                map_size,
                str(self.torch_device),
            )
            seed_everything(seed)  # upstream's permutations seed numpy themselves
            self.flow = mods["model"].get_cs_flow_model(input_dim=self.extractor.channels)
        else:
            self.extractor = NativeExtractor(
                str(cfg["extractor"]), bool(cfg["pretrained"]), cfg.get("weights_path"), seed
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.flow = native.CrossScaleFlow(
                    self.extractor.channels,
                    int(cfg["n_coupling_blocks"]),
                    int(cfg["fc_internal"]),
                    list(cfg["kernel_sizes"]),
                    float(cfg["clamp"]),
                )
        self.extractor.to(self.torch_device)
        self.flow.to(self.torch_device)

    def _calibrate(self, train: SampleSet) -> None:
        """Random backbones: batch-norm statistics from the training images (bn_calibration)."""
        assert self.extractor is not None
        bs = int(self.config["batch_size"])
        calibrate_batchnorm(self.extractor, batches(train, self.size, bs, self.torch_device))
        self.bn_state_ = {
            k: v.cpu()
            for k, v in self.extractor.state_dict().items()
            if "running" in k or "num_batches" in k
        }

    def _features(self, data: SampleSet) -> list[torch.Tensor]:
        """Backbone maps of all images per scale, on the CPU: ``[[N, C, h_s, w_s]] * 3``."""
        assert self.extractor is not None
        parts: list[list[torch.Tensor]] = [[], [], []]
        bs = int(self.config["batch_size"])
        for x in batches(data, self.size, bs, self.torch_device):
            for k, f in enumerate(self.extractor(x)):
                parts[k].append(f.cpu())
        return [torch.cat(p) for p in parts]

    def _forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        assert self.flow is not None
        if self.source == "upstream":
            z, jac = self._mods["model"].nf_forward(self.flow, feats)
            return list(z), sum(jac)
        return self.flow(feats)

    def _loss(self, z: list[torch.Tensor], logdet: torch.Tensor) -> torch.Tensor:
        if self.source == "upstream":
            return self._mods["utils"].get_loss(z, [logdet])
        return native.nll_loss(z, logdet)

    # -- contract ----------------------------------------------------------------------------
    def _fit(self, train: SampleSet) -> None:
        seed = int(self.config["seed"])
        seed_everything(seed)
        self._build()
        assert self.flow is not None
        if not self.config.get("pretrained"):
            self._calibrate(train)
        feats = self._features(train)
        opt = torch.optim.Adam(
            self.flow.parameters(), lr=float(self.config["lr_init"]), eps=1e-4, weight_decay=1e-5
        )
        epochs = int(self.config["meta_epochs"]) * int(self.config["sub_epochs"])
        bs = int(self.config["batch_size"])
        gen = torch.Generator().manual_seed(seed)
        self.flow.train()
        self.loss_history_: list[float] = []
        for _ in tqdm(range(epochs), desc="csflow", disable=not self.config.get("progress")):
            order = torch.randperm(len(train), generator=gen)
            losses = []
            for s in range(0, len(order), bs):
                idx = order[s : s + bs]
                batch = [f[idx].to(self.torch_device) for f in feats]
                opt.zero_grad()
                loss = self._loss(*self._forward(batch))
                loss.backward()
                nn.utils.clip_grad_norm_(self.flow.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            self.loss_history_.append(float(np.mean(losses)))
        self.flow.eval()

    @torch.no_grad()
    def _latents(self, data: SampleSet) -> list[torch.Tensor]:
        assert self.flow is not None
        self.flow.eval()
        feats = self._features(data)
        bs = int(self.config["batch_size"])
        out: list[list[torch.Tensor]] = [[], [], []]
        for s in range(0, len(data), bs):
            z, _ = self._forward([f[s : s + bs].to(self.torch_device) for f in feats])
            for k in range(3):
                out[k].append(z[k].cpu())
        return [torch.cat(o) for o in out]

    def _predict(self, test: SampleSet) -> Predictions:
        z = self._latents(test)
        scores = native.image_scores(z)
        maps = native.anomaly_maps(z)
        maps = F.interpolate(
            maps[:, None], size=tuple(test.eval_size), mode="bilinear", align_corners=False
        )[:, 0]
        return Predictions(scores.double().numpy(), maps.float().numpy())

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        z = self._latents(images)
        size = z[0].shape[-2:]
        parts = [z[0]] + [
            F.interpolate(zk, size=size, mode="bilinear", align_corners=False) for zk in z[1:]
        ]
        return FeatureMaps(torch.cat(parts, dim=1).numpy(), name="latents")

    def _save_state(self, directory: Path) -> None:
        assert self.flow is not None
        torch.save(self.flow.state_dict(), directory / "csflow_flow.pt")
        if getattr(self, "bn_state_", None):
            torch.save(self.bn_state_, directory / "csflow_bn_stats.pt")

    def _load_state(self, directory: Path) -> None:
        self._build()
        assert self.flow is not None
        state = torch.load(
            directory / "csflow_flow.pt", map_location=self.torch_device, weights_only=True
        )
        self.flow.load_state_dict(state)
        self.flow.eval()
        stats = directory / "csflow_bn_stats.pt"
        if stats.exists():
            assert self.extractor is not None
            self.extractor.load_state_dict(torch.load(stats, weights_only=True), strict=False)
            self.extractor.eval()
