"""RevDist (RD++), upstream source: drives vendor/revdist (tientrandinh/Revisiting-Reverse-
Distillation, loose modules) unmodified, from outside.

Used from the checkout (imported with adapters.common.upstream_modules, no file edited, no
bytecode written): ``model.resnet`` (the teacher encoder and the one-class bottleneck ``bn``,
e.g. ``wide_resnet50_2() -> (encoder, bn)``), ``model.de_resnet`` (the student decoder),
``utils.utils_train`` (``MultiProjectionLayer``, ``Revisit_RDLoss``, ``loss_fucntion``),
``utils.utils_test.cal_anomaly_map``, ``dataset.dataset.get_data_transforms`` (its
normalisation) and ``dataset.noise.Simplex_CLASS`` (its simplex noise).

Training without test data: upstream's ``main.py`` evaluates on the test set after every
epoch and keeps the best epoch's weights. This source never does: it runs main.py's loop
(projection -> ``Revisit_RDLoss``, ``bn`` -> decoder -> ``loss_fucntion``, loss
``L_distill + weight_proj * L_proj``, Adam betas (0.5, 0.999) with ``proj_lr`` /
``distill_lr``, both stepped when ``(i + 1) % accumulation_steps == 0`` with ``i`` the batch
index within the epoch, as upstream: no step after an epoch's odd last batch, whose gradients
carry over) for exactly ``epochs`` epochs and keeps the final weights. Batches are shuffled
every epoch with torch's global generator (as its DataLoader), seeded from ``seed`` with
numpy's and Python's (upstream's noise uses ``np.random``).

Data: upstream's ``MVTecDataset_train`` reads PNG files with OpenCV and always resizes to
256 x 256, so it is not used; its ``__getitem__`` is followed on our images instead
(adapters.common / orchestrator.data resize them to ``image_size``; ``/ 255``): the clean
image and a noisy copy with one ``0.2 * Simplex_CLASS().rand_3d_octaves((3, h, w), 6, 0.6)``
patch, ``h, w`` drawn from ``[10, size // 8)`` (below 88 px, where that range is empty:
``[min(10, size // 8 - 1), max(size // 8, 11))``, as the native source) at a random position,
both normalised by its ``get_data_transforms`` transform.

Weights: the encoder is built with ``pretrained=False`` (no download from upstream's URLs)
and loaded with the state dict of the native teacher (adapters.common.build_backbone with
the same ``backbone`` / ``pretrained`` / ``weights_path`` / ``seed``: torchvision weights, the
same key names); with ``pretrained: false`` its batch-norm statistics are estimated on the
training images (adapters.common.bn_calibration) as the native source does, so both sources
start from the same teacher. The encoder's parameters are frozen (upstream leaves
``requires_grad`` on but never steps them: same numbers, less work).

Run-time patches (no file edited):

- ``Revisit_RDLoss.forward`` moves its contrast target with ``.to('cuda')``: while the loss is
  called, ``torch.Tensor.to`` maps a ``'cuda'`` device to the engine's device (``cuda_as``:
  the CPU, or the chosen GPU); restored afterwards.
- ``dataset.noise`` compiles numba functions with ``cache=True`` (cache files next to the
  source): while it is imported, ``numba.config.CACHE_DIR`` points to the orchestrator's
  cache folder, so nothing is written into the checkout. Numba records a compiled function's
  module by name and re-imports it to load it from the cache, so ``dataset.noise`` is
  registered in ``sys.modules`` while its noise is drawn (``importable``), and only then.

Prediction as upstream's ``evaluation_multi_proj``: per image ``cal_anomaly_map(inputs,
outputs, image_size, amap_mode='a')`` (sum of the three upsampled ``1 - cos`` maps), scipy
``gaussian_filter`` (sigma ``smoothing_sigma``, upstream 4); image score = the map's maximum.
Features: the per-scale maps of ``cal_anomaly_map`` at the finest teacher scale,
``[N, 3, H / 4, W / 4]``. Upstream's networks need a square ``image_size``, a multiple of 32.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn
from tqdm.auto import tqdm

from adapters.common import config_backbone, seed_everything, upstream_modules
from adapters.common.bn_calibration import calibrate_batchnorm
from adapters.common.engine import NetworkEngine
from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError
from orchestrator.paths import cache_dir

#: backbone -> (encoder constructor in model.resnet, decoder constructor in model.de_resnet)
ARCHS = {
    "resnet18": ("resnet18", "de_resnet18"),
    "resnet34": ("resnet34", "de_resnet34"),
    "resnet50": ("resnet50", "de_resnet50"),
    "wide_resnet50_2": ("wide_resnet50_2", "de_wide_resnet50_2"),
}
MODULES = ["model.resnet", "model.de_resnet", "utils.utils_train", "utils.utils_test"]


def load_upstream(checkout: Path) -> dict[str, ModuleType]:
    """The checkout's modules by dotted name (numba's cache kept out of the checkout)."""
    try:
        import numba  # noqa: F401  (dataset/noise.py needs it)
        from numba.core import config as numba_config
    except ImportError as exc:
        raise UserError("RevDist upstream needs numba (pip install numba)") from exc
    saved = numba_config.CACHE_DIR
    numba_config.CACHE_DIR = str(cache_dir() / "numba")
    try:
        return upstream_modules(Path(checkout), [*MODULES, "dataset.dataset", "dataset.noise"])
    finally:
        numba_config.CACHE_DIR = saved


def _is_cuda(device: object) -> bool:
    return (isinstance(device, str) and device.startswith("cuda")) or (
        isinstance(device, torch.device) and device.type == "cuda"
    )


@contextlib.contextmanager
def cuda_as(device: torch.device) -> Iterator[None]:
    """While active, ``tensor.to('cuda')`` goes to ``device`` (upstream hard-codes 'cuda')."""
    own = "to" in torch.Tensor.__dict__
    original = torch.Tensor.to

    def to(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        args = tuple(device if _is_cuda(a) else a for a in args)
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = device
        return original(self, *args, **kwargs)

    torch.Tensor.to = to  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own:
            torch.Tensor.to = original  # type: ignore[method-assign]
        else:
            del torch.Tensor.to


@contextlib.contextmanager
def importable(modules: dict[str, ModuleType]) -> Iterator[None]:
    """While active, ``modules`` (``{dotted name: module}``) are registered in sys.modules."""
    saved = {k: sys.modules[k] for k in modules if k in sys.modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for k in modules:
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def patch_size_range(size: int) -> tuple[int, int]:
    """``[low, high)`` of a noise patch side: upstream's ``[10, size // 8)`` where not empty."""
    if size // 8 > 10:
        return 10, size // 8
    return min(10, size // 8 - 1), max(size // 8, 11)


class UpstreamRevDist(NetworkEngine):
    """The upstream engine behind ``adapters.revdist.RevDist`` (modules built by fit/set_state)."""

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        super().__init__(config, device, checkout)
        c = config
        if c["backbone"] not in ARCHS:
            raise UserError(
                f"revdist upstream: backbone {c['backbone']!r} not supported "
                f"(upstream pairs encoder and decoder for: {', '.join(ARCHS)})"
            )
        h, w = self.size
        if h != w or h % 32:
            raise UserError(
                f"revdist upstream: image_size must be square and a multiple of 32, got {(h, w)}"
            )
        self.up = load_upstream(checkout)
        self.transform = self.up["dataset.dataset"].get_data_transforms(h, h)[0]
        self.loss_history_: list[float] = []

    def build(self) -> None:
        c, seed = self.config, int(self.config["seed"])
        res, de_res = self.up["model.resnet"], self.up["model.de_resnet"]
        enc_name, dec_name = ARCHS[c["backbone"]]
        weights = config_backbone(c)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, bn = getattr(res, enc_name)(pretrained=False)
            decoder = getattr(de_res, dec_name)(pretrained=False)
            encoder.load_state_dict(weights.state_dict())
            encoder.eval()
            with torch.no_grad():
                probe = encoder(torch.zeros(1, 3, 64, 64))
            base = int(probe[0].shape[1]) // 4  # channels: base * 4, base * 8, base * 16
            assert [int(f.shape[1]) for f in probe] == [base * 4, base * 8, base * 16]
            proj = self.up["utils.utils_train"].MultiProjectionLayer(base=base)
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        self.bn, self.decoder, self.proj = (m.to(self.device) for m in (bn, decoder, proj))

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        """Float images ``[N, H, W, 3]`` in [0, 1] through upstream's transform."""
        return torch.stack([self.transform(img) for img in images]).to(self.device)

    def _noisy(self, img: np.ndarray) -> np.ndarray:
        """One image plus a simplex-noise patch, as ``MVTecDataset_train.__getitem__``."""
        h, w = img.shape[:2]
        lo_h, hi_h = patch_size_range(h)
        lo_w, hi_w = patch_size_range(w)
        h_noise = np.random.randint(lo_h, hi_h)
        w_noise = np.random.randint(lo_w, hi_w)
        start_h = np.random.randint(1, h - h_noise)
        start_w = np.random.randint(1, w - w_noise)
        with importable({"dataset.noise": self.up["dataset.noise"]}):  # numba's cache
            noise = self.simplex.rand_3d_octaves((3, h_noise, w_noise), 6, 0.6)
        patch = np.zeros((h, w, 3))
        patch[start_h : start_h + h_noise, start_w : start_w + w_noise, :] = 0.2 * noise.transpose(
            1, 2, 0
        )
        return img + patch

    def _transformed(self, data: SampleSet) -> Iterator[torch.Tensor]:
        """``data``'s images in batches, through upstream's transform."""
        bs = int(self.config["batch_size"])
        for s in range(0, len(data), bs):
            yield self._tensor(data[s : s + bs].load_images(self.size) / 255.0)

    def fit(self, train: SampleSet) -> None:
        c = self.config
        seed_everything(int(c["seed"]))
        self.build()
        bs, acc, wp = int(c["batch_size"]), int(c["accumulation_steps"]), float(c["weight_proj"])
        if not c.get("pretrained"):  # as the native teacher (same inputs: adapters.common)
            calibrate_batchnorm(self.encoder, self.batches(train))
        n_batches = -(-len(train) // bs)
        if n_batches < acc:
            warnings.warn(
                f"revdist upstream: {n_batches} batch(es) per epoch < accumulation_steps {acc}: "
                "upstream's loop never steps the optimisers",
                stacklevel=2,
            )
        train_utils = self.up["utils.utils_train"]
        self.simplex = self.up["dataset.noise"].Simplex_CLASS()  # seeded from np.random
        proj_loss = train_utils.Revisit_RDLoss()
        opt_proj = torch.optim.Adam(
            list(self.proj.parameters()), lr=float(c["proj_lr"]), betas=(0.5, 0.999)
        )
        opt_distill = torch.optim.Adam(
            list(self.decoder.parameters()) + list(self.bn.parameters()),
            lr=float(c["distill_lr"]),
            betas=(0.5, 0.999),
        )
        images = train.load_images(self.size)
        self.loss_history_ = []
        epochs = int(c["epochs"])
        for e in tqdm(range(epochs), desc="revdist", disable=not c.get("progress")):
            self.bn.train()
            self.proj.train()
            self.decoder.train()
            order = torch.randperm(len(images)).numpy()
            total = 0.0
            for i, s in enumerate(range(0, len(order), bs)):
                clean = images[order[s : s + bs]] / 255.0
                img = self._tensor(clean)
                img_noise = self._tensor(np.stack([self._noisy(x) for x in clean]))
                inputs = self.encoder(img)
                inputs_noise = self.encoder(img_noise)
                feature_space_noise, feature_space = self.proj(inputs, features_noise=inputs_noise)
                with cuda_as(self.device):
                    l_proj = proj_loss(inputs_noise, feature_space_noise, feature_space)
                outputs = self.decoder(self.bn(feature_space))
                l_distill = train_utils.loss_fucntion(inputs, outputs)
                loss = l_distill + wp * l_proj
                loss.backward()
                if (i + 1) % acc == 0:
                    opt_proj.step()
                    opt_distill.step()
                    opt_proj.zero_grad()
                    opt_distill.zero_grad()
                total += float(loss.detach())
            self.loss_history_.append(total)
            self.epoch_end(e + 1, epochs, total / max(-(-len(images) // bs), 1))
        self._eval_mode()

    def _eval_mode(self) -> None:
        for m in (self.encoder, self.proj, self.bn, self.decoder):
            m.eval()

    @torch.no_grad()
    def _pairs(self, data: SampleSet) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
        """Per image: teacher features and student outputs, each ``[1, C, h, w]`` per scale."""
        self._eval_mode()
        for x in self._transformed(data):
            inputs = self.encoder(x)
            outputs = self.decoder(self.bn(self.proj(inputs)))
            for i in range(len(x)):
                yield [f[i : i + 1] for f in inputs], [f[i : i + 1] for f in outputs]

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        cal_anomaly_map = self.up["utils.utils_test"].cal_anomaly_map
        sigma = float(self.config["smoothing_sigma"])
        scores, maps = [], []
        for inputs, outputs in self._pairs(test):
            amap, _ = cal_anomaly_map(inputs, outputs, self.size[0], amap_mode="a")
            amap = gaussian_filter(amap, sigma=sigma)
            scores.append(float(np.max(amap)))
            maps.append(amap.astype(np.float32))
        return np.asarray(scores), torch.from_numpy(np.stack(maps))

    def features(self, images: SampleSet) -> np.ndarray:
        cal_anomaly_map = self.up["utils.utils_test"].cal_anomaly_map
        out = []
        for inputs, outputs in self._pairs(images):
            _, per_scale = cal_anomaly_map(inputs, outputs, inputs[0].shape[-1], amap_mode="a")
            out.append(np.stack(per_scale).astype(np.float32))
        return np.stack(out)

    def trained(self) -> dict[str, nn.Module]:
        return {"proj": self.proj, "bn": self.bn, "decoder": self.decoder}

    def frozen(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}
