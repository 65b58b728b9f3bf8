"""DRAEM, native source: the engine, and its anomaly synthesis (our own implementation).

After Zavrtanik et al., ICCV 2021. fit: for a fixed number of ``epochs`` (each
``iterations_per_epoch`` batches, or one pass over the training images), batches of normal
images drawn at random are turned into (augmented, mask) pairs by ``AnomalySynthesizer``: a
thresholded Perlin-noise mask ``M``; the augmented image is
``I (1 - M) + (1 - beta) A M + beta I M`` with ``A`` an augmented texture (``texture_dir``, or
``n_textures`` procedural ones) and ``beta ~ U(0, 0.8)``; a share ``1 - anomaly_prob`` of the
samples is left anomaly-free. The networks of adapters.draem.networks are trained with
L2 + SSIM (reconstruction) and focal loss (segmentation): Adam (``lr``), learning rate x0.2 at
80 % and 90 % of the epochs, as upstream's train_DRAEM.py. The upstream engine
(adapters.draem.upstream) runs this same loop on upstream's networks, losses and data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import rotate
from torch import nn
from tqdm.auto import tqdm

from adapters.common.engine import NetworkEngine
from adapters.draem import networks
from adapters.draem.perlin import perlin_mask
from adapters.draem.textures import load_texture_dir, procedural_textures, random_colour_augment
from orchestrator.data.types import SampleSet

#: one epoch's training batches (normal, augmented ``[B, 3, H, W]``, mask ``[B, 1, H, W]``)
Epoch = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AnomalySynthesizer:
    """Makes (augmented image, mask) training pairs from normal images and textures."""

    def __init__(
        self,
        textures: Sequence[np.ndarray],
        rng: np.random.Generator,
        anomaly_prob: float = 0.5,
        rotate_prob: float = 0.3,
        beta_max: float = 0.8,
    ):
        if not textures:
            raise ValueError("DRAEM synthesis needs at least one texture")
        self.textures = list(textures)
        self.rng = rng
        self.anomaly_prob = anomaly_prob
        self.rotate_prob = rotate_prob
        self.beta_max = beta_max

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``image`` float ``[H, W, 3]`` in [0, 1] -> (normal, augmented, mask ``[H, W, 1]``)."""
        rng = self.rng
        h, w = image.shape[:2]
        if rng.uniform() < self.rotate_prob:
            image = rotate(image, rng.uniform(-90, 90), axes=(0, 1), reshape=False, order=1)
        image = image.astype(np.float32)
        if rng.uniform() >= self.anomaly_prob:
            return image, image, np.zeros((h, w, 1), np.float32)
        tex = self.textures[int(rng.integers(len(self.textures)))]
        if tex.shape[:2] != (h, w):
            tex = np.asarray(
                torch.nn.functional.interpolate(
                    torch.from_numpy(tex).permute(2, 0, 1)[None].float(),
                    size=(h, w),
                    mode="bilinear",
                    align_corners=False,
                )[0]
                .permute(1, 2, 0)
                .clamp(0, 255)
                .to(torch.uint8)
            )
        tex = random_colour_augment(tex, rng).astype(np.float32) / 255.0
        mask = perlin_mask((h, w), rng)[..., None]
        beta = float(rng.uniform(0, self.beta_max))
        aug = image * (1 - mask) + (1 - beta) * tex * mask + beta * image * mask
        return image, aug.astype(np.float32), mask


def training_batch(
    images: np.ndarray, idx: np.ndarray, synth: AnomalySynthesizer
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors (normal, augmented ``[B, 3, H, W]``, mask ``[B, 1, H, W]``) for rows ``idx``."""
    parts = [synth(images[i]) for i in idx]
    normal = torch.from_numpy(np.stack([p[0] for p in parts])).permute(0, 3, 1, 2)
    aug = torch.from_numpy(np.stack([p[1] for p in parts])).permute(0, 3, 1, 2)
    mask = torch.from_numpy(np.stack([p[2] for p in parts])).permute(0, 3, 1, 2)
    return normal.contiguous(), aug.contiguous(), mask.contiguous()


class NativeDRAEM(NetworkEngine):
    """The native engine behind ``adapters.draem.DRAEM`` (networks built by fit/set_state).

    ``_networks``, ``_training``, ``feature_block`` and ``bgr`` are what the upstream engine
    replaces.
    """

    #: the networks read BGR images (upstream reads them with OpenCV)
    bgr = False

    def __init__(self, config: dict, device: torch.device, checkout: Path | None = None):
        super().__init__(config, device, checkout)
        self.recon: nn.Module | None = None
        self.disc: nn.Module | None = None

    def _networks(self) -> tuple[nn.Module, nn.Module, Callable[[nn.Module], None]]:
        """The reconstructive and discriminative sub-networks and their initialisation."""
        base, dbase = int(self.config["base_width"]), int(self.config["disc_base_width"])
        recon = networks.Reconstructive(3, 3, base)
        disc = networks.Discriminative(6, 2, dbase)
        return recon, disc, networks.init_weights

    def build(self) -> None:
        """Fresh, initialised networks on the engine's device."""
        recon, disc, init = self._networks()
        recon.apply(init)
        disc.apply(init)
        self.recon, self.disc = recon.to(self.device), disc.to(self.device)

    def feature_block(self) -> nn.Module:
        """The discriminative decoder's last block (``extract_features``)."""
        assert self.disc is not None
        return self.disc.dec[-1].conv

    def textures(self) -> list[np.ndarray]:
        """The anomaly sources: ``texture_dir``'s images, else procedural textures."""
        if self.config.get("texture_dir"):
            return load_texture_dir(self.config["texture_dir"], self.size)
        n, seed = int(self.config["n_textures"]), int(self.config["seed"])
        return procedural_textures(n, self.size, seed)

    def epoch_samples(self, n: int) -> int:
        """Samples per epoch: ``iterations_per_epoch`` batches, else the ``n`` images."""
        it = self.config.get("iterations_per_epoch")
        return int(it) * int(self.config["batch_size"]) if it else n

    def _training(self, train: SampleSet, workdir: Path) -> tuple[Epoch, Loss, Loss]:
        """The epochs' batches, the SSIM loss and the focal loss."""
        rng = np.random.default_rng(int(self.config["seed"]))
        images = train.load_images(self.size).astype(np.float32) / 255.0
        synth = AnomalySynthesizer(
            self.textures(),
            rng,
            float(self.config["anomaly_prob"]),
            float(self.config["rotate_prob"]),
        )
        bs = int(self.config["batch_size"])

        def epoch():  # noqa: ANN202
            n = self.epoch_samples(len(images))
            idx = rng.integers(len(images), size=n)  # random draws, as upstream's dataset
            for s in range(0, n, bs):
                yield training_batch(images, idx[s : s + bs], synth)

        return epoch, networks.ssim_loss, networks.focal_loss

    def fit(self, train: SampleSet) -> None:
        seed, epochs = int(self.config["seed"]), int(self.config["epochs"])
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(seed)
            self.build()
            epoch, ssim, focal = self._training(train, Path(tmp))
            assert self.recon is not None and self.disc is not None
            params = [
                {"params": self.recon.parameters(), "lr": float(self.config["lr"])},
                {"params": self.disc.parameters(), "lr": float(self.config["lr"])},
            ]
            opt = torch.optim.Adam(params)
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, [epochs * 0.8, epochs * 0.9], gamma=0.2
            )
            self.recon.train()
            self.disc.train()
            bar = tqdm(range(epochs), desc="draem fit", disable=not self.config.get("progress"))
            for e in bar:
                losses = []
                for normal, aug, mask in epoch():
                    normal, aug = normal.to(self.device), aug.to(self.device)
                    mask = mask.to(self.device)
                    rec = self.recon(aug)
                    probs = torch.softmax(self.disc(torch.cat([rec, aug], dim=1)), dim=1)
                    loss = F.mse_loss(rec, normal) + ssim(rec, normal) + focal(probs, mask)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                sched.step()
                self.epoch_end(e + 1, epochs, float(np.mean(losses)) if losses else None)
        self.recon.eval()
        self.disc.eval()

    def _inputs(self, data: SampleSet) -> Iterator[torch.Tensor]:
        bs = int(self.config["batch_size"])
        for s in range(0, len(data), bs):
            x = torch.from_numpy(data[s : s + bs].load_images(self.size)).float() / 255.0
            x = x.permute(0, 3, 1, 2)
            if self.bgr:
                x = x.flip(1)
            yield x.contiguous().to(self.device)

    @torch.no_grad()
    def _forward(self, data: SampleSet, features: bool = False) -> tuple[list, list]:
        """Anomaly channel maps per batch, and (``features``) the feature block's outputs."""
        assert self.recon is not None and self.disc is not None
        self.recon.eval()
        self.disc.eval()
        maps, feats = [], []
        captured: list[torch.Tensor] = []
        hook = None
        if features:
            hook = self.feature_block().register_forward_hook(
                lambda _m, _i, out: captured.append(out)
            )
        try:
            for x in self._inputs(data):
                rec = self.recon(x)
                probs = torch.softmax(self.disc(torch.cat([rec, x], dim=1)), dim=1)
                maps.append(probs[:, 1].cpu())
                if features:
                    f = captured.pop()
                    stride = int(self.config.get("feature_stride") or 1)
                    if stride > 1:
                        f = F.avg_pool2d(f, stride, stride)
                    feats.append(f.cpu())
        finally:
            if hook is not None:
                hook.remove()
        return maps, feats

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        """Maps at ``image_size``; score: the max of the ``score_kernel`` box-filtered map."""
        maps, _ = self._forward(test)
        m = torch.cat(maps)
        k = int(self.config["score_kernel"])
        smooth = F.avg_pool2d(m[:, None], k, stride=1, padding=k // 2) if k > 1 else m[:, None]
        return smooth.flatten(1).max(dim=1).values.double().numpy(), m

    def features(self, images: SampleSet) -> np.ndarray:
        _, feats = self._forward(images, features=True)
        return torch.cat(feats).numpy()

    def trained(self) -> dict[str, nn.Module]:
        assert self.recon is not None and self.disc is not None
        return {"recon": self.recon, "disc": self.disc}
