"""RevDist, native source: the engine training the networks of adapters.revdist.networks.

fit: for a fixed number of ``epochs`` (no selection on test data), each batch of normal
images and a noisy copy (one smooth noise patch per image, ``networks.noise_patches``) go
through the frozen teacher (``backbone`` layers 1-3); the projection layers, the one-class
bottleneck and the student decoder are trained with ``distill + weight_proj * projection``
losses; two Adam optimisers (projection: ``proj_lr``; bottleneck + decoder: ``distill_lr``;
betas (0.5, 0.999)) stepped when ``(i + 1) % accumulation_steps == 0`` with ``i`` the batch
index within the epoch, as upstream's main.py: an epoch's odd last batch adds its gradients to
the next epoch's first step; after the last epoch, pending gradients get one more step.
``pretrained: false``: the random teacher's batch-norm statistics are estimated on the
training images first (adapters.common.bn_calibration).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adapters.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LayerFeatures,
    config_backbone,
    gaussian_blur,
    seed_everything,
)
from adapters.common.bn_calibration import calibrate_batchnorm
from adapters.common.engine import NetworkEngine
from adapters.revdist import networks
from orchestrator.data.types import SampleSet

LAYERS = ["layer1", "layer2", "layer3"]


class NativeRevDist(NetworkEngine):
    """The native engine behind ``adapters.revdist.RevDist`` (modules built by fit/set_state)."""

    def __init__(self, config: dict, device: torch.device):
        super().__init__(config, device)
        self.loss_history_: list[float] = []

    def build(self) -> None:
        seed = int(self.config["seed"])
        self.teacher = LayerFeatures(config_backbone(self.config), LAYERS).to(self.device)
        with torch.no_grad():
            probe = self.teacher(torch.zeros(1, 3, 64, 64, device=self.device))
        channels = [int(f.shape[1]) for f in probe]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.proj = networks.MultiProjection(channels).to(self.device)
            self.bottleneck = networks.OCBE(channels).to(self.device)
            self.decoder = networks.StudentDecoder(channels).to(self.device)

    def _student(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(self.bottleneck(self.proj(feats)), [f.shape[-2:] for f in feats])

    def _normalise(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(self.device)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def fit(self, train: SampleSet) -> None:
        cfg, seed = self.config, int(self.config["seed"])
        seed_everything(seed)
        self.build()
        bs = int(cfg["batch_size"])
        if not cfg.get("pretrained"):
            calibrate_batchnorm(self.teacher, self.batches(train))
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
        self.loss_history_ = []
        pending = False
        epochs = int(cfg["epochs"])
        for e in tqdm(range(epochs), desc="revdist", disable=not cfg.get("progress")):
            for m in (self.proj, self.bottleneck, self.decoder):
                m.train()
            order = rng.permutation(len(images))
            starts = list(range(0, len(order), bs))
            losses = []
            for i, s in enumerate(starts):
                idx = order[s : s + bs]
                clean = self._normalise(images[idx])
                noisy = self._normalise(networks.noise_patches(images[idx], rng))
                t_clean, t_noisy = self.teacher(clean), self.teacher(noisy)
                p_noisy, p_clean = self.proj(t_noisy), self.proj(t_clean)
                l_proj = networks.projection_loss(t_noisy, p_noisy, p_clean, gen)
                student = self.decoder(self.bottleneck(p_clean), [f.shape[-2:] for f in t_clean])
                loss = networks.distill_loss(t_clean, student) + wp * l_proj
                loss.backward()
                pending = True
                if (i + 1) % acc == 0:
                    pending = self._step(opt_proj, opt_dist)
                losses.append(float(loss.detach()))
            self.loss_history_.append(float(np.mean(losses)))
            self.epoch_end(e + 1, epochs, self.loss_history_[-1])
        if pending:  # the last odd batches' gradients (and tiny sets with fewer than acc batches)
            self._step(opt_proj, opt_dist)
        self._eval_mode()

    @staticmethod
    def _step(*optimisers: torch.optim.Optimizer) -> bool:
        for opt in optimisers:
            opt.step()
            opt.zero_grad()
        return False

    def _eval_mode(self) -> None:
        for m in (self.teacher, self.proj, self.bottleneck, self.decoder):
            m.eval()

    @torch.no_grad()
    def _pairs(self, data: SampleSet):  # noqa: ANN202
        self._eval_mode()
        for x in self.batches(data):
            t = self.teacher(x)
            yield t, self._student(t)

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        """Image scores and maps at ``image_size`` (sum of ``1 - cos``, smoothed; max)."""
        scores, maps = [], []
        sigma = float(self.config["smoothing_sigma"])
        for t, s in self._pairs(test):
            m = gaussian_blur(networks.anomaly_map(t, s, self.size), sigma)
            scores.append(m.flatten(1).max(dim=1).values.cpu())
            maps.append(m.cpu())
        return torch.cat(scores).double().numpy(), torch.cat(maps)

    def features(self, images: SampleSet) -> np.ndarray:
        """The three per-scale ``1 - cos`` maps at the finest teacher scale, ``[N, 3, h, w]``."""
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
        return torch.cat(out).numpy()

    def trained(self) -> dict[str, nn.Module]:
        return {"proj": self.proj, "bottleneck": self.bottleneck, "decoder": self.decoder}

    def frozen(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}
