"""Revisiting Reverse Distillation / RD++ (Tien et al., CVPR 2023) behind the adapter contract.

fit: for a fixed number of ``epochs`` (no selection on test data), each batch of normal
images and a noisy copy (one smooth noise patch per image, adapters.revdist.native) go through
the frozen teacher (``backbone`` layers 1-3); the projection layers, the one-class bottleneck
and the student decoder are trained with ``distill + weight_proj * projection`` losses; two
Adam optimisers (projection: ``proj_lr``; bottleneck + decoder: ``distill_lr``; betas
(0.5, 0.999)) stepped every ``accumulation_steps`` batches (and after an epoch's last batch).

predict: anomaly map = sum over the three scales of ``1 - cos(teacher, student)`` per pixel,
bilinearly resized to ``image_size``, Gaussian-smoothed (``smoothing_sigma``, 4), then resized
to the evaluation size; image score = the maximum of the smoothed map (as upstream).

extract_features: the three per-scale ``1 - cos`` maps at the finest teacher scale, stacked,
``[N, 3, H / 4, W / 4]`` (name "cosine_distance").

``pretrained: false`` (tests): the random teacher's batch-norm statistics are estimated on the
training images (adapters.common.bn_calibration). Only the ``native`` source is implemented.
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
from adapters.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LayerFeatures,
    as_size,
    batches,
    build_backbone,
    gaussian_blur,
    resolve_device,
    seed_everything,
    upsample,
)
from adapters.common.bn_calibration import calibrate_batchnorm
from adapters.revdist import native
from orchestrator.data.types import SampleSet

LAYERS = ["layer1", "layer2", "layer3"]


class RevDist(Adapter):
    name = "revdist"
    default_resources = Resources(cpu=2, gpu=1, memory_gb=16)
    sources = ("native",)
    default_config: ClassVar[dict[str, Any]] = {
        "backbone": "wide_resnet50_2",
        "pretrained": True,
        "weights_path": None,
        "image_size": 256,
        "epochs": 200,
        "batch_size": 16,
        "proj_lr": 0.001,
        "distill_lr": 0.005,
        "weight_proj": 0.2,
        "accumulation_steps": 2,
        "smoothing_sigma": 4.0,
        "progress": False,
        "seed": 0,
    }

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        self.torch_device = resolve_device(str(device))

    @property
    def size(self) -> tuple[int, int]:
        return as_size(self.config["image_size"])

    def _build(self) -> None:
        cfg, seed = self.config, int(self.config["seed"])
        backbone = build_backbone(
            str(cfg["backbone"]), bool(cfg["pretrained"]), cfg.get("weights_path"), seed
        )
        self.teacher = LayerFeatures(backbone, LAYERS).to(self.torch_device)
        with torch.no_grad():
            probe = self.teacher(torch.zeros(1, 3, 64, 64, device=self.torch_device))
        channels = [int(f.shape[1]) for f in probe]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.proj = native.MultiProjection(channels).to(self.torch_device)
            self.bottleneck = native.OCBE(channels).to(self.torch_device)
            self.decoder = native.StudentDecoder(channels).to(self.torch_device)

    def _student(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(self.bottleneck(self.proj(feats)), [f.shape[-2:] for f in feats])

    def _normalise(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(self.torch_device)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _fit(self, train: SampleSet) -> None:
        cfg, seed = self.config, int(self.config["seed"])
        seed_everything(seed)
        self._build()
        bs = int(cfg["batch_size"])
        if not cfg.get("pretrained"):
            calibrate_batchnorm(self.teacher, batches(train, self.size, bs, self.torch_device))
            self.teacher.eval()
        images = train.load_images(self.size).astype(np.float32) / 255.0
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        opt_proj = torch.optim.Adam(
            self.proj.parameters(), lr=float(cfg["proj_lr"]), betas=(0.5, 0.999)
        )
        opt_dist = torch.optim.Adam(
            list(self.decoder.parameters()) + list(self.bottleneck.parameters()),
            lr=float(cfg["distill_lr"]),
            betas=(0.5, 0.999),
        )
        acc = int(cfg["accumulation_steps"])
        wp = float(cfg["weight_proj"])
        self.loss_history_: list[float] = []
        for _ in tqdm(range(int(cfg["epochs"])), desc="revdist", disable=not cfg.get("progress")):
            for m in (self.proj, self.bottleneck, self.decoder):
                m.train()
            order = rng.permutation(len(images))
            starts = list(range(0, len(order), bs))
            losses = []
            for i, s in enumerate(starts):
                idx = order[s : s + bs]
                clean = self._normalise(images[idx])
                noisy = self._normalise(native.noise_patches(images[idx], rng))
                t_clean, t_noisy = self.teacher(clean), self.teacher(noisy)
                p_noisy, p_clean = self.proj(t_noisy), self.proj(t_clean)
                l_proj = native.projection_loss(t_noisy, p_noisy, p_clean, gen)
                student = self.decoder(self.bottleneck(p_clean), [f.shape[-2:] for f in t_clean])
                loss = native.distill_loss(t_clean, student) + wp * l_proj
                loss.backward()
                if (i + 1) % acc == 0 or i == len(starts) - 1:
                    opt_proj.step()
                    opt_dist.step()
                    opt_proj.zero_grad()
                    opt_dist.zero_grad()
                losses.append(float(loss.detach()))
            self.loss_history_.append(float(np.mean(losses)))
        self._eval_mode()

    def _eval_mode(self) -> None:
        for m in (self.teacher, self.proj, self.bottleneck, self.decoder):
            m.eval()

    @torch.no_grad()
    def _pairs(self, data: SampleSet):  # noqa: ANN202
        self._eval_mode()
        for x in batches(data, self.size, int(self.config["batch_size"]), self.torch_device):
            t = self.teacher(x)
            yield t, self._student(t)

    def _predict(self, test: SampleSet) -> Predictions:
        scores, maps = [], []
        sigma = float(self.config["smoothing_sigma"])
        for t, s in self._pairs(test):
            m = gaussian_blur(native.anomaly_map(t, s, self.size), sigma)
            scores.append(m.flatten(1).max(dim=1).values.cpu())
            maps.append(upsample(m, tuple(test.eval_size)).cpu())
        return Predictions(torch.cat(scores).double().numpy(), torch.cat(maps).numpy())

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        out = []
        for t, s in self._pairs(images):
            size = t[0].shape[-2:]
            per = [
                F.interpolate(
                    (1 - F.cosine_similarity(a, b, dim=1))[:, None],
                    size=size,
                    mode="bilinear",
                    align_corners=True,
                )
                for a, b in zip(t, s, strict=True)
            ]
            out.append(torch.cat(per, dim=1).cpu())
        return FeatureMaps(torch.cat(out).numpy(), name="cosine_distance")

    def _modules(self) -> dict[str, nn.Module]:
        return {
            "teacher": self.teacher,
            "proj": self.proj,
            "bottleneck": self.bottleneck,
            "decoder": self.decoder,
        }

    def _save_state(self, directory: Path) -> None:
        state = {k: m.state_dict() for k, m in self._modules().items() if k != "teacher"}
        state["teacher_bn"] = {
            k: v
            for k, v in self.teacher.state_dict().items()
            if "running" in k or "num_batches" in k
        }
        torch.save(state, directory / "revdist.pt")

    def _load_state(self, directory: Path) -> None:
        self._build()
        state = torch.load(directory / "revdist.pt", map_location=self.torch_device)
        self.teacher.load_state_dict(state.pop("teacher_bn"), strict=False)
        for k, sd in state.items():
            self._modules()[k].load_state_dict(sd)
        self._eval_mode()
