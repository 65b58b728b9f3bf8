"""DRAEM (Zavrtanik et al., ICCV 2021) behind the adapter contract.

fit: for a fixed number of ``epochs`` (no selection on test data), batches of normal images
are turned into (augmented, mask) pairs by Perlin-noise texture synthesis; the
reconstructive sub-network learns to restore the normal image (L2 + SSIM loss), the
discriminative sub-network segments ``concat(reconstruction, augmented)`` (focal loss).
Adam (``lr`` for both), learning rate x0.2 at 80 % and 90 % of the epochs, as upstream.

predict: the anomaly map is the softmax anomaly channel of the discriminative output at
``image_size``, bilinearly resized to the evaluation size; the image score is the maximum of
that map averaged by a ``score_kernel`` x ``score_kernel`` box filter (21, stride 1, zero
padding), as upstream's evaluation computes it.

extract_features: the discriminative sub-network's last decoder block (the features just
before its final 3x3 conv), ``[N, disc_base_width, H / s, W / s]``, average-pooled by
``feature_stride`` ``s`` (default 8; 1 keeps the full ``image_size`` resolution).

Anomaly sources: ``texture_dir`` (a folder of images, e.g. DTD's ``images/``) or, when null,
``n_textures`` procedural textures generated at run time (adapters.draem.textures).
Sources: ``native`` (adapters.draem.native) and ``upstream`` (vendor/draem, see
adapters.draem.upstream). DRAEM has no pretrained backbone: ``pretrained`` is accepted for
the common config shape and ignored.
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
from adapters.draem import native
from adapters.draem.textures import load_texture_dir, procedural_textures, texture_files
from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError


def _as_size(size: Any) -> tuple[int, int]:
    if isinstance(size, int | float):
        return int(size), int(size)
    return int(size[0]), int(size[1])


class DRAEM(Adapter):
    name = "draem"
    default_resources = Resources(cpu=2, gpu=1, memory_gb=16)
    sources = ("upstream", "native")
    profile_notes: ClassVar[dict[str, str]] = {
        "quick": "DRAEM trains both sub-networks from scratch (no pretrained backbone); the "
        "quick profile's 200 CPU steps leave it near chance on some categories, so its quick "
        "numbers say little: use --profile paper (a GPU) for DRAEM"
    }
    default_config: ClassVar[dict[str, Any]] = {
        "epochs": 700,
        "lr": 0.0001,
        "batch_size": 8,
        "image_size": 256,
        "base_width": 128,
        "disc_base_width": 64,
        "texture_dir": None,
        "n_textures": 28,
        "anomaly_prob": 0.5,
        "rotate_prob": 0.3,
        "score_kernel": 21,
        "feature_stride": 8,
        "iterations_per_epoch": None,
        "pretrained": False,
        "progress": False,
        "seed": 0,
    }

    def __init__(self, config=None, device: str = "cpu", source: str = "native") -> None:
        super().__init__(dict(self.default_config) | dict(config or {}), device, source)
        dev = str(device)
        self.torch_device = torch.device(
            "cpu" if dev.startswith("cuda") and not torch.cuda.is_available() else dev
        )
        h, w = self.size
        if h % 32 or w % 32:
            raise UserError(f"draem: image_size must be a multiple of 32 per axis, got {(h, w)}")
        self.recon: nn.Module | None = None
        self.disc: nn.Module | None = None

    @property
    def size(self) -> tuple[int, int]:
        return _as_size(self.config["image_size"])

    # -- networks ----------------------------------------------------------------------------
    def _upstream(self):  # noqa: ANN202
        from adapters.draem.upstream import load_upstream

        return load_upstream(str(self.record_checkout()))

    def _build(self) -> None:
        base, dbase = int(self.config["base_width"]), int(self.config["disc_base_width"])
        if self.source == "upstream":
            up = self._upstream()
            self.recon = up.model_unet.ReconstructiveSubNetwork(3, 3, base_width=base)
            self.disc = up.model_unet.DiscriminativeSubNetwork(6, 2, base_channels=dbase)
            init = up.train_DRAEM.weights_init
        else:
            self.recon = native.Reconstructive(3, 3, base)
            self.disc = native.Discriminative(6, 2, dbase)
            init = native.init_weights
        self.recon.apply(init)
        self.disc.apply(init)
        self.recon.to(self.torch_device)
        self.disc.to(self.torch_device)

    def _feature_block(self) -> nn.Module:
        assert self.disc is not None
        if self.source == "upstream":
            return self.disc.decoder_segment.db4
        return self.disc.dec[-1].conv

    # -- training ----------------------------------------------------------------------------
    def _textures(self) -> list[np.ndarray]:
        if self.config.get("texture_dir"):
            return load_texture_dir(self.config["texture_dir"], self.size)
        n, seed = int(self.config["n_textures"]), int(self.config["seed"])
        return procedural_textures(n, self.size, seed)

    def _native_batches(self, train: SampleSet, rng: np.random.Generator):  # noqa: ANN202
        images = train.load_images(self.size).astype(np.float32) / 255.0
        synth = native.AnomalySynthesizer(
            self._textures(),
            rng,
            float(self.config["anomaly_prob"]),
            float(self.config["rotate_prob"]),
        )
        bs = int(self.config["batch_size"])

        def epoch():  # noqa: ANN202
            n = self._epoch_samples(len(images))
            idx = rng.integers(len(images), size=n)  # random draws, as upstream's dataset
            for s in range(0, n, bs):
                yield native.training_batch(images, idx[s : s + bs], synth)

        return epoch, native.ssim_loss, native.focal_loss

    def _epoch_samples(self, n: int) -> int:
        it = self.config.get("iterations_per_epoch")
        return int(it) * int(self.config["batch_size"]) if it else n

    def _upstream_batches(self, train: SampleSet, workdir: Path):  # noqa: ANN202
        from torch.utils.data import DataLoader

        from adapters.draem.textures import write_texture_set
        from adapters.draem.upstream import cuda_calls_as_noop, seed_upstream

        up = self._upstream()
        seed_upstream(int(self.config["seed"]))
        if self.config.get("texture_dir"):
            sources = texture_files(self.config["texture_dir"])
        else:
            sources = write_texture_set(self._textures(), workdir)
        h, w = self.size
        # the constructor globs upstream's folder layout; the file lists are set afterwards
        ds = up.data_loader.MVTecDRAEMTrainDataset(str(workdir), str(workdir), resize_shape=[h, w])
        ds.image_paths = [str(s.image_path) for s in train]
        ds.anomaly_source_paths = [str(p) for p in sources]
        n = self._epoch_samples(len(train))
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=n)
        loader = DataLoader(
            ds, batch_size=int(self.config["batch_size"]), sampler=sampler, num_workers=0
        )
        with cuda_calls_as_noop(self.torch_device.type != "cuda"):
            ssim = up.loss.SSIM()
        focal = up.loss.FocalLoss()

        def epoch():  # noqa: ANN202
            for b in loader:
                yield b["image"], b["augmented_image"], b["anomaly_mask"]

        return epoch, ssim, focal

    def _fit(self, train: SampleSet) -> None:
        import tempfile

        seed = int(self.config["seed"])
        epochs = int(self.config["epochs"])
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(seed)
            self._build()
            if self.source == "upstream":
                epoch, ssim, focal = self._upstream_batches(train, Path(tmp))
            else:
                epoch, ssim, focal = self._native_batches(train, np.random.default_rng(seed))
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
            for _ in bar:
                for normal, aug, mask in epoch():
                    normal, aug = normal.to(self.torch_device), aug.to(self.torch_device)
                    mask = mask.to(self.torch_device)
                    rec = self.recon(aug)
                    probs = torch.softmax(self.disc(torch.cat([rec, aug], dim=1)), dim=1)
                    loss = F.mse_loss(rec, normal) + ssim(rec, normal) + focal(probs, mask)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                sched.step()
        self.recon.eval()
        self.disc.eval()

    # -- inference ---------------------------------------------------------------------------
    def _inputs(self, data: SampleSet):  # noqa: ANN202
        bs = int(self.config["batch_size"])
        for s in range(0, len(data), bs):
            x = torch.from_numpy(data[s : s + bs].load_images(self.size)).float() / 255.0
            x = x.permute(0, 3, 1, 2)
            if self.source == "upstream":
                x = x.flip(1)  # upstream reads BGR with OpenCV
            yield x.contiguous().to(self.torch_device)

    @torch.no_grad()
    def _forward(self, data: SampleSet, features: bool = False) -> tuple[list, list]:
        assert self.recon is not None and self.disc is not None
        self.recon.eval()
        self.disc.eval()
        maps, feats = [], []
        captured: list[torch.Tensor] = []
        hook = None
        if features:
            hook = self._feature_block().register_forward_hook(
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

    def _predict(self, test: SampleSet) -> Predictions:
        maps, _ = self._forward(test)
        m = torch.cat(maps)  # [N, H, W] at image_size
        k = int(self.config["score_kernel"])
        smooth = F.avg_pool2d(m[:, None], k, stride=1, padding=k // 2) if k > 1 else m[:, None]
        scores = smooth.flatten(1).max(dim=1).values.double().numpy()
        out = F.interpolate(
            m[:, None], size=tuple(test.eval_size), mode="bilinear", align_corners=False
        )[:, 0]
        return Predictions(scores, out.numpy())

    def _extract_features(self, images: SampleSet) -> FeatureMaps:
        _, feats = self._forward(images, features=True)
        return FeatureMaps(torch.cat(feats).numpy(), name="discriminative_decoder")

    # -- persistence -------------------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        assert self.recon is not None and self.disc is not None
        torch.save(
            {"recon": self.recon.state_dict(), "disc": self.disc.state_dict()},
            directory / "draem.pt",
        )

    def _load_state(self, directory: Path) -> None:
        state = torch.load(
            directory / "draem.pt", map_location=self.torch_device, weights_only=True
        )
        self._build()
        assert self.recon is not None and self.disc is not None
        self.recon.load_state_dict(state["recon"])
        self.disc.load_state_dict(state["disc"])
        self.recon.eval()
        self.disc.eval()
