"""DRAEM, upstream source: drives the unmodified VitjanZ/DRAEM checkout.

Used from the checkout (imported at run time, no file edited): ``model_unet``
(ReconstructiveSubNetwork, DiscriminativeSubNetwork), ``loss`` (SSIM, FocalLoss),
``data_loader.MVTecDRAEMTrainDataset`` (its imgaug augmentation and Perlin synthesis) and
``train_DRAEM.weights_init``. The engine (UpstreamDRAEM) drives them with the native engine's
loop, the training step of ``train_DRAEM.py`` (whose ``train_on_device`` hard-codes CUDA,
paths and TensorBoard).

What is adjusted from outside, at run time:

- imgaug 0.4.0 predates NumPy 2: ``np.sctypes`` and ``np.complex`` are restored (only when
  missing) before importing it, and ``imgaug.augmenters.pillike._autocontrast_pil`` gets its
  sampled ``cutoff`` as a Python number (recent Pillow rejects the 1-element array).
- ``tensorboard_visualizer`` (imported by ``train_DRAEM``, needs TensorBoard) is replaced by
  a stub: visualisation is not used.
- ``loss.SSIM.__init__`` calls ``.cuda()``: on a CPU device, ``torch.Tensor.cuda`` is a
  no-op while the loss is constructed.
- The training dataset's file lists (``image_paths``, ``anomaly_source_paths``) are set to
  the SampleSet's images and the texture files (upstream globs ``*.png`` / ``*/*.jpg``).
- Upstream reads images with OpenCV (BGR); at prediction the engine feeds BGR too.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from adapters.draem.native import Epoch, Loss, NativeDRAEM
from adapters.draem.textures import texture_files, write_texture_set
from orchestrator.data.types import SampleSet
from orchestrator.errors import UserError

UPSTREAM_MODULES = ("perlin", "model_unet", "loss", "data_loader", "train_DRAEM")


def patch_numpy_for_imgaug() -> None:
    """Restore the NumPy < 2 names imgaug 0.4.0 uses (only those missing)."""
    if "sctypes" not in np.__dict__:
        np.sctypes = {  # type: ignore[attr-defined]
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64, np.longdouble],
            "complex": [np.complex64, np.complex128, np.clongdouble],
            "others": [bool, object, bytes, str, np.void],
        }
    if "complex" not in np.__dict__:
        np.complex = complex  # type: ignore[attr-defined]


def import_imgaug() -> types.ModuleType:
    """imgaug with the NumPy 2 / Pillow compatibility fixes applied."""
    patch_numpy_for_imgaug()
    try:
        import imgaug
        from imgaug.augmenters import pillike
    except ImportError as exc:
        raise UserError(
            "DRAEM upstream needs imgaug and OpenCV: pip install imgaug opencv-python-headless"
        ) from exc
    original = pillike._autocontrast_pil
    if not getattr(original, "_orchestrator_patched", False):

        def autocontrast(image, cutoff, ignore):  # noqa: ANN001, ANN202
            cutoff = float(np.asarray(cutoff).reshape(-1)[0])
            return original(image, cutoff, ignore)

        autocontrast._orchestrator_patched = True  # type: ignore[attr-defined]
        pillike._autocontrast_pil = autocontrast
    return imgaug


def _stub_visualizer() -> types.ModuleType:
    mod = types.ModuleType("tensorboard_visualizer")

    class TensorboardVisualizer:  # noqa: D401 - stub
        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            raise RuntimeError("TensorBoard visualisation is not used by the orchestrator")

    mod.TensorboardVisualizer = TensorboardVisualizer
    return mod


def load_upstream(checkout: str | Path) -> types.SimpleNamespace:
    """Import DRAEM's modules from the checkout folder ``checkout`` (once per folder).

    They are imported under their own names with the checkout on ``sys.path`` only for the
    import, then removed from ``sys.modules`` so their generic names (``loss``,
    ``perlin``...) don't shadow other checkouts' modules.
    """
    return _load_upstream(str(Path(checkout).resolve()))


@cache
def _load_upstream(folder: str) -> types.SimpleNamespace:
    path = Path(folder)
    if not (path / "model_unet.py").is_file():
        raise UserError(
            f"DRAEM upstream checkout not found at {path} (run: orchestrate vendor sync)"
        )
    import_imgaug()
    names = (*UPSTREAM_MODULES, "tensorboard_visualizer")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, str(path))
    sys.modules["tensorboard_visualizer"] = _stub_visualizer()
    try:
        mods = {n: importlib.import_module(n) for n in UPSTREAM_MODULES}
    finally:
        sys.path.remove(str(path))
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return types.SimpleNamespace(root=path, **mods)


@contextlib.contextmanager
def cuda_calls_as_noop(active: bool) -> Iterator[None]:
    """While active, ``Tensor.cuda()`` returns the tensor itself (CPU runs of upstream code)."""
    if not active:
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def seed_upstream(seed: int) -> None:
    """Seed every RNG the upstream data pipeline draws from (NumPy, torch, imgaug)."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    import_imgaug().seed(seed)


def transfer_state(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy ``src``'s parameters and buffers into ``dst`` of the same architecture.

    The native networks register their layers in upstream's order, so the two state dicts
    correspond entry by entry (names differ); shapes are checked. Used by the parity check
    (same weights -> same outputs).
    """
    a, b = src.state_dict(), dst.state_dict()
    if len(a) != len(b):
        raise ValueError(f"architectures differ: {len(a)} vs {len(b)} state entries")
    out = {}
    for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
        if va.shape != vb.shape:
            raise ValueError(f"shape mismatch {ka} {tuple(va.shape)} vs {kb} {tuple(vb.shape)}")
        out[kb] = va.clone()
    dst.load_state_dict(out)


class UpstreamDRAEM(NativeDRAEM):
    """The upstream engine behind ``adapters.draem.DRAEM``: the native engine's loop on
    upstream's networks, losses and training dataset."""

    bgr = True

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        super().__init__(config, device, checkout)
        self.up = load_upstream(checkout)

    def _networks(self) -> tuple[nn.Module, nn.Module, Callable[[nn.Module], None]]:
        base, dbase = int(self.config["base_width"]), int(self.config["disc_base_width"])
        recon = self.up.model_unet.ReconstructiveSubNetwork(3, 3, base_width=base)
        disc = self.up.model_unet.DiscriminativeSubNetwork(6, 2, base_channels=dbase)
        return recon, disc, self.up.train_DRAEM.weights_init

    def feature_block(self) -> nn.Module:
        assert self.disc is not None
        return self.disc.decoder_segment.db4

    def _training(self, train: SampleSet, workdir: Path) -> tuple[Epoch, Loss, Loss]:
        """Upstream's training dataset on our images and textures, its SSIM and focal loss."""
        seed_upstream(int(self.config["seed"]))
        if self.config.get("texture_dir"):
            sources = texture_files(self.config["texture_dir"])
        else:
            sources = write_texture_set(self.textures(), workdir)
        h, w = self.size
        # the constructor globs upstream's folder layout; the file lists are set afterwards
        ds = self.up.data_loader.MVTecDRAEMTrainDataset(
            str(workdir), str(workdir), resize_shape=[h, w]
        )
        ds.image_paths = [str(s.image_path) for s in train]
        ds.anomaly_source_paths = [str(p) for p in sources]
        n = self.epoch_samples(len(train))
        sampler = RandomSampler(ds, replacement=True, num_samples=n)
        loader = DataLoader(
            ds, batch_size=int(self.config["batch_size"]), sampler=sampler, num_workers=0
        )
        with cuda_calls_as_noop(self.device.type != "cuda"):
            ssim = self.up.loss.SSIM()
        focal = self.up.loss.FocalLoss()

        def epoch():  # noqa: ANN202
            for b in loader:
                yield b["image"], b["augmented_image"], b["anomaly_mask"]

        return epoch, ssim, focal
