"""SimpleNet, native source: the project's own implementation after the paper and upstream.

Patch features: adapters.common.PatchEmbedder on a frozen backbone (as PatchCore). The
backbone is frozen and the images are not augmented, so the training images' patch features
are computed once and cached. Training: a one-layer linear feature adapter (``pre_proj``
layers, AdamW, ``lr``) maps them to adapted features; fake features are adapted features
plus Gaussian noise (std ``noise_std``, with ``mix_noise`` > 1 each patch draws one of the
stds ``noise_std * 1.1**k``); a 2-layer MLP discriminator (Linear, BatchNorm, LeakyReLU 0.2,
Linear without bias; Adam, ``dsc_lr``, weight decay 1e-5) is trained with the truncated l1
loss ``max(0, th - D(true)) + max(0, th + D(fake))``, ``th = dsc_margin``. It trains exactly
``meta_epochs * gan_epochs`` passes over shuffled batches of ``batch_size`` training images;
no test data is looked at. Patch score = ``-D(adapter(feature))``, image score = its max;
map: patch scores upsampled to ``image_size``, Gaussian-smoothed (sigma 4).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adapters.common import build_embedder, gaussian_blur, upsample
from adapters.common.engine import NetworkEngine
from orchestrator.data.types import SampleSet


def _xavier(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)


def feature_adapter(dim: int, n_layers: int = 1) -> nn.Sequential:
    """``n_layers`` linear layers ``dim -> dim`` (SimpleNet's feature adaptor)."""
    net = nn.Sequential(*[nn.Linear(dim, dim) for _ in range(max(n_layers, 1))])
    net.apply(_xavier)
    return net


def discriminator(dim: int, n_layers: int = 2, hidden: int | None = None) -> nn.Sequential:
    """MLP: ``n_layers - 1`` blocks (Linear, BatchNorm1d, LeakyReLU 0.2), then Linear -> 1."""
    layers: list[nn.Module] = []
    width = dim
    for _ in range(n_layers - 1):
        out = hidden if hidden else int(width // 1.5)
        layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.LeakyReLU(0.2)]
        width = out
    layers.append(nn.Linear(width, 1, bias=False))
    net = nn.Sequential(*layers)
    net.apply(_xavier)
    return net


class NativeSimpleNet(NetworkEngine):
    """The native engine behind ``adapters.simplenet.SimpleNet``."""

    def __init__(self, config: dict, device: torch.device):
        super().__init__(config, device)
        self.embedder = build_embedder(config, device)
        self.build()
        self.steps = 0  # optimiser steps taken by the last fit

    def build(self) -> None:
        """A fresh feature adaptor and discriminator, initialised from ``seed``."""
        c, dim = self.config, int(self.config["target_embed_dimension"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(c["seed"]))
            self.adapter = feature_adapter(dim, int(c["pre_proj"])).to(self.device)
            disc = discriminator(dim, int(c["dsc_layers"]), c.get("dsc_hidden"))
        self.disc = disc.to(self.device)

    def trained(self) -> dict[str, nn.Module]:
        return {"adapter": self.adapter, "discriminator": self.disc}

    def patch_features(self, data: SampleSet) -> torch.Tensor:
        """``[N, h, w, D]`` frozen patch features (on the engine's device)."""
        return torch.cat([self.embedder(x) for x in self.batches(data)])

    def fit(self, train: SampleSet) -> None:
        c = self.config
        self.build()  # a second fit starts afresh, as the first
        feats = self.patch_features(train)
        n, d = len(feats), feats.shape[-1]
        gen = torch.Generator(device="cpu").manual_seed(int(c["seed"]))
        adapter_opt = torch.optim.AdamW(self.adapter.parameters(), float(c["lr"]))
        dsc_opt = torch.optim.Adam(self.disc.parameters(), float(c["dsc_lr"]), weight_decay=1e-5)
        th, bs = float(c["dsc_margin"]), int(c["batch_size"])
        k = max(int(c.get("mix_noise", 1)), 1)
        stds = float(c["noise_std"]) * 1.1 ** torch.arange(k, dtype=torch.float32)
        epochs = int(c["meta_epochs"]) * int(c["gan_epochs"])
        self.adapter.train()
        self.disc.train()
        self.steps = 0
        for e in tqdm(range(epochs), desc="simplenet", disable=not c.get("progress", False)):
            losses = []
            for chunk in torch.randperm(n, generator=gen).split(bs):
                true = self.adapter(feats[chunk.to(feats.device)].reshape(-1, d))
                pick = torch.randint(0, k, (len(true), 1), generator=gen)
                noise = torch.randn(true.shape, generator=gen) * stds[pick]
                fake = true + noise.to(true.device)
                scores = self.disc(torch.cat([true, fake]))
                true_s, fake_s = scores[: len(true)], scores[len(true) :]
                loss = F.relu(th - true_s).mean() + F.relu(fake_s + th).mean()
                adapter_opt.zero_grad()
                dsc_opt.zero_grad()
                loss.backward()
                adapter_opt.step()
                dsc_opt.step()
                self.steps += 1
                losses.append(float(loss.detach()))
            self.epoch_end(e + 1, epochs, float(np.mean(losses)))
        self.adapter.eval()
        self.disc.eval()

    @torch.no_grad()
    def _adapted(self, data: SampleSet) -> torch.Tensor:
        feats = self.patch_features(data)
        n, h, w, d = feats.shape
        return self.adapter(feats.reshape(-1, d)).reshape(n, h, w, d)

    @torch.no_grad()
    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        z = self._adapted(test)
        n, h, w, d = z.shape
        patch = -self.disc(z.reshape(-1, d)).reshape(n, h, w).cpu()
        scores = patch.reshape(n, -1).max(dim=1).values.double().numpy()
        maps = upsample(patch, self.size)
        return scores, gaussian_blur(maps, float(self.config.get("smoothing_sigma", 4)))

    def features(self, images: SampleSet) -> np.ndarray:
        """Adapted patch features ``[N, D, h, w]``."""
        return self._adapted(images).permute(0, 3, 1, 2).cpu().numpy()
