"""SimpleNet, upstream source: drives vendor/simplenet (DonaldRR/SimpleNet, loose modules)
unmodified, from outside.

How: its ``simplenet`` and ``common`` modules are imported from the checkout in isolation
(adapters.common.upstream_modules, so its generic module names don't clash with other
checkouts). ``simplenet.SimpleNet.load(...)`` builds the model with our config and our
backbone object (built by adapters.common with the same seed / weights as the native source,
instead of its ``backbones.load`` which always downloads ImageNet weights); ``lr`` is passed
as ``10 * lr`` because upstream gives its adaptor ``0.1 * lr``. Its TensorBoard logger is
replaced by a no-op object at run time (no log folder is written).

Training without test data: upstream's ``train(train, test)`` evaluates on the test set after
every meta-epoch and keeps the best one. This source never calls it; it calls the lower-level
``_train_discriminator(batches)`` exactly ``meta_epochs`` times (each runs ``gan_epochs``
passes), on training batches from our loader (``{"image": tensor}`` dicts, reshuffled with a
seeded generator every meta-epoch, as upstream's shuffled DataLoader), and keeps the final
weights. Its global RNG use (noise) is seeded from ``seed``. Prediction uses its ``_predict``
(maps at ``image_size``, scipy Gaussian smoothing, sigma 4); features are its
``pre_projection(_embed(x))``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from adapters.common import seed_everything, upstream_modules
from adapters.common.engine import NetworkEngine
from adapters.common.patches import upstream_embedder_args
from orchestrator.data.types import SampleSet


class _NoLogger:
    """Stands in for upstream's TensorBoard wrapper (``logger.logger.add_scalar``, ``step``):
    writes nothing, keeps the ``loss`` values it is given (one per batch) for the curves."""

    g_iter = 0

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.logger = SimpleNamespace(add_scalar=self._scalar)

    def _scalar(self, tag: str, value, *args, **kwargs) -> None:
        if tag == "loss":  # upstream passes the loss tensor itself
            self.losses.append(float(value.detach() if hasattr(value, "detach") else value))

    def step(self) -> None:
        self.g_iter += 1


class UpstreamSimpleNet(NetworkEngine):
    """The upstream engine behind ``adapters.simplenet.SimpleNet``."""

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        super().__init__(config, device, checkout)
        self.module = upstream_modules(Path(checkout), ["simplenet"])["simplenet"]
        self.model = None  # built by fit / set_state

    def build(self) -> None:
        """A fresh upstream model with our config and backbone (its own seeded init)."""
        c, device = self.config, self.device
        embedder_args = upstream_embedder_args(c, device)
        embedder_args["backbone"].seed = int(c["seed"])
        seed_everything(int(c["seed"]))
        self.model = self.module.SimpleNet(device)
        self.model.load(
            **embedder_args,
            meta_epochs=int(c["meta_epochs"]),
            gan_epochs=int(c["gan_epochs"]),
            noise_std=float(c["noise_std"]),
            dsc_layers=int(c["dsc_layers"]),
            dsc_hidden=c.get("dsc_hidden"),
            dsc_margin=float(c["dsc_margin"]),
            dsc_lr=float(c["dsc_lr"]),
            lr=10 * float(c["lr"]),
            pre_proj=int(c["pre_proj"]),
            mix_noise=int(c.get("mix_noise", 1)),
        )
        self.model.logger = _NoLogger()

    def trained(self) -> dict[str, nn.Module]:
        trained = {"discriminator": self.model.discriminator}
        if int(self.config["pre_proj"]) > 0:
            trained["adapter"] = self.model.pre_projection
        return trained

    def fit(self, train: SampleSet) -> None:
        self.build()  # a second fit starts afresh, as the first
        seed = int(self.config["seed"])
        seed_everything(seed)
        rng = np.random.default_rng(seed)
        meta, gan = int(self.config["meta_epochs"]), int(self.config["gan_epochs"])
        for m in range(meta):
            order = train.subset(rng.permutation(len(train)).tolist())
            batches = [{"image": x} for x in self.batches(order)]
            self.model.logger.losses.clear()
            self.model._train_discriminator(batches)
            self._report(m, meta, gan, len(batches))
        self.model.discriminator.eval()
        if int(self.config["pre_proj"]) > 0:
            self.model.pre_projection.eval()

    def _report(self, meta_epoch: int, meta: int, gan: int, n_batches: int) -> None:
        """The epochs of one ``_train_discriminator`` call (``gan`` passes of ``n_batches``)
        to the monitor; the model can be probed only after the call, at its last epoch."""
        losses = self.model.logger.losses
        for j in range(gan):
            part = losses[j * n_batches : (j + 1) * n_batches]
            loss = float(np.mean(part)) if part else None
            self.epoch_end(meta_epoch * gan + j + 1, meta * gan, loss, can_probe=j == gan - 1)

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        scores, maps = [], []
        for x in self.batches(test):
            s, m, _ = self.model._predict(x)
            scores.extend(float(v) for v in np.asarray(s).reshape(-1))
            maps.extend(np.asarray(v, dtype=np.float32) for v in m)
        return np.asarray(scores), torch.from_numpy(np.stack(maps))

    @torch.no_grad()
    def features(self, images: SampleSet) -> np.ndarray:
        out = []
        self.model.discriminator.eval()
        for x in self.batches(images):
            feats, shapes = self.model._embed(x, evaluation=True)
            if int(self.config["pre_proj"]) > 0:
                self.model.pre_projection.eval()
                feats = self.model.pre_projection(feats)
            h, w = shapes[0]
            out.append(feats.reshape(len(x), h, w, -1).permute(0, 3, 1, 2).cpu().numpy())
        return np.concatenate(out)
