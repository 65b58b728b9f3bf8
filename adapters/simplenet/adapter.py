"""SimpleNet (Liu et al., CVPR 2023) behind the adapter contract.

Two sources with one config: ``native`` (adapters.simplenet.native) and ``upstream``
(adapters.simplenet.upstream, drives the upstream checkout unmodified). Both get the same images
(resized to ``image_size``, no centre crop; ImageNet normalisation) and the same backbone
weights; both train a FIXED number of epochs (``meta_epochs`` x ``gan_epochs`` passes over the
training images) and never look at test data (upstream's own ``train`` evaluates on the test
set every meta-epoch and keeps the best one: the upstream source does not call it).

Config (registry.yaml): ``lr`` is the feature adaptor's learning rate (paper: 1e-4; upstream
passes ``lr * 0.1`` to its AdamW, so the upstream source hands it ``10 * lr``), ``dsc_lr``
the discriminator's (2e-4), ``noise_std`` 0.015, ``dsc_margin`` 0.5 (truncated l1 threshold),
``dsc_hidden`` 1024, ``dsc_layers`` 2, ``pre_proj`` 1 adaptor layer, ``mix_noise`` 1.
``progress: true`` (not a registry parameter) shows a progress bar while the native source trains.

Image score: the maximum of the negated discriminator output over patches (upstream).
extract_features: patch features after the feature adaptor, ``[N, D, h, w]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.common.config import embedder_defaults
from adapters.common.engine import EngineAdapter


class SimpleNet(EngineAdapter):
    #: registry.yaml's params of this method, key for key (tests/test_registry_defaults.py)
    default_config: ClassVar[dict[str, Any]] = {
        **embedder_defaults(1536),
        "meta_epochs": 40,
        "gan_epochs": 4,
        "noise_std": 0.015,
        "dsc_hidden": 1024,
        "dsc_layers": 2,
        "dsc_margin": 0.5,
        "dsc_lr": 0.0002,
        "lr": 0.0001,
        "pre_proj": 1,
        "mix_noise": 1,
        "image_size": 288,
        "smoothing_sigma": 4.0,
        "batch_size": 8,
        "seed": 0,
    }
    name = "simplenet"
    feature_name = "adapter"
