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

from adapters.common import as_size, batches, build_backbone, seed_everything, upstream_modules
from orchestrator.data.types import SampleSet


class _NoLogger:
    """Stands in for upstream's TensorBoard wrapper (``logger.logger.add_scalar``, ``step``)."""

    g_iter = 0

    def __init__(self) -> None:
        self.logger = SimpleNamespace(add_scalar=lambda *args, **kwargs: None)

    def step(self) -> None:
        self.g_iter += 1


class UpstreamSimpleNet:
    """The upstream engine behind ``adapters.simplenet.SimpleNet``."""

    def __init__(self, config: dict, device: torch.device, checkout: Path):
        self.config = c = config
        self.device = device
        mod = upstream_modules(Path(checkout), ["simplenet"])["simplenet"]
        backbone = build_backbone(
            c["backbone"], bool(c["pretrained"]), c.get("weights_path"), int(c["seed"])
        )
        backbone.name, backbone.seed = c["backbone"], int(c["seed"])
        h, w = as_size(c["image_size"])
        seed_everything(int(c["seed"]))
        self.model = mod.SimpleNet(device)
        self.model.load(
            backbone=backbone,
            layers_to_extract_from=list(c["layers"]),
            device=device,
            input_shape=(3, h, w),
            pretrain_embed_dimension=int(c["pretrain_embed_dimension"]),
            target_embed_dimension=int(c["target_embed_dimension"]),
            patchsize=int(c["patchsize"]),
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

    def _batches(self, data: SampleSet):
        size = as_size(self.config["image_size"])
        return batches(data, size, int(self.config["batch_size"]), self.device)

    def fit(self, train: SampleSet) -> None:
        seed = int(self.config["seed"])
        seed_everything(seed)
        rng = np.random.default_rng(seed)
        for _ in range(int(self.config["meta_epochs"])):
            order = train.subset(rng.permutation(len(train)).tolist())
            self.model._train_discriminator([{"image": x} for x in self._batches(order)])
        self.model.discriminator.eval()
        if int(self.config["pre_proj"]) > 0:
            self.model.pre_projection.eval()

    def predict(self, test: SampleSet) -> tuple[np.ndarray, torch.Tensor]:
        scores, maps = [], []
        for x in self._batches(test):
            s, m, _ = self.model._predict(x)
            scores.extend(float(v) for v in np.asarray(s).reshape(-1))
            maps.extend(np.asarray(v, dtype=np.float32) for v in m)
        return np.asarray(scores), torch.from_numpy(np.stack(maps))

    @torch.no_grad()
    def features(self, images: SampleSet) -> np.ndarray:
        out = []
        self.model.discriminator.eval()
        for x in self._batches(images):
            feats, shapes = self.model._embed(x, evaluation=True)
            if int(self.config["pre_proj"]) > 0:
                self.model.pre_projection.eval()
                feats = self.model.pre_projection(feats)
            h, w = shapes[0]
            out.append(feats.reshape(len(x), h, w, -1).permute(0, 3, 1, 2).cpu().numpy())
        return np.concatenate(out)

    def state(self) -> dict[str, dict]:
        state = {"discriminator": self.model.discriminator.state_dict()}
        if int(self.config["pre_proj"]) > 0:
            state["adapter"] = self.model.pre_projection.state_dict()
        return state

    def set_state(self, state: dict[str, dict]) -> None:
        self.model.discriminator.load_state_dict(state["discriminator"])
        self.model.discriminator.eval()
        if "adapter" in state:
            self.model.pre_projection.load_state_dict(state["adapter"])
            self.model.pre_projection.eval()
