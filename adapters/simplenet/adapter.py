"""SimpleNet (Liu et al., CVPR 2023) behind the adapter contract.

Two sources with one config: ``native`` (adapters.simplenet.native) and ``upstream``
(adapters.simplenet.upstream, drives vendor/simplenet unmodified). Both get the same images
(resized to ``image_size``, no centre crop; ImageNet normalisation) and the same backbone
weights; both train a FIXED number of epochs (``meta_epochs`` x ``gan_epochs`` passes over the
training images) and never look at test data (upstream's own ``train`` evaluates on the test
set every meta-epoch and keeps the best one: the upstream source does not call it).

Config (registry.yaml): ``lr`` is the feature adaptor's learning rate (paper: 1e-4; upstream
passes ``lr * 0.1`` to its AdamW, so the upstream source hands it ``10 * lr``), ``dsc_lr``
the discriminator's (2e-4), ``noise_std`` 0.015, ``dsc_margin`` 0.5 (truncated l1 threshold),
``dsc_hidden`` 1024, ``dsc_layers`` 2, ``pre_proj`` 1 adaptor layer, ``mix_noise`` 1.

Image score: the maximum of the negated discriminator output over patches (upstream).
extract_features: patch features after the feature adaptor, ``[N, D, h, w]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import Resources
from adapters.common.engine import EngineAdapter


class SimpleNet(EngineAdapter):
    name = "simplenet"
    uses_weights_resolver = True
    native_engine = "adapters.simplenet.native:NativeSimpleNet"
    upstream_engine = "adapters.simplenet.upstream:UpstreamSimpleNet"
    feature_name = "adapter"
    default_resources = Resources(cpu=2, gpu=1, memory_gb=16)
    sources = ("upstream", "native")
    default_config: ClassVar[dict[str, Any]] = {
        "backbone": "wide_resnet50_2",
        "layers": ["layer2", "layer3"],
        "pretrained": True,
        "weights_path": None,
        "pretrain_embed_dimension": 1536,
        "target_embed_dimension": 1536,
        "patchsize": 3,
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
        "resize": 329,
        "image_size": 288,
        "smoothing_sigma": 4.0,
        "batch_size": 8,
        "progress": False,
        "seed": 0,
    }
