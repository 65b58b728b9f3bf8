"""Revisiting Reverse Distillation / RD++ (Tien et al., CVPR 2023) behind the adapter contract.

Two sources with one config: ``native`` (adapters.revdist.native, training the networks of
adapters.revdist.networks, written from the paper) and ``upstream`` (adapters.revdist.upstream,
drives the upstream checkout unmodified). Both get the same images (resized to ``image_size``,
ImageNet normalisation) and the same teacher weights (``backbone``, ``pretrained`` /
``weights_path``, ``seed``; with ``pretrained: false`` the random teacher's batch-norm
statistics are estimated on the training images, adapters.common.bn_calibration).

fit: for a fixed number of ``epochs`` (no selection on test data: upstream's main.py keeps the
epoch with the best test metrics, neither source does), each batch of normal images and a
noisy copy (one noise patch per image) go through the frozen teacher (layers 1-3); the
projection layers, the one-class bottleneck and the student decoder are trained with
``distill + weight_proj * projection`` losses; two Adam optimisers (projection: ``proj_lr``;
bottleneck + decoder: ``distill_lr``; betas (0.5, 0.999)) stepped every
``accumulation_steps`` batches of an epoch, as upstream (native: plus one final step for
gradients still pending after the last epoch).

predict: anomaly map = sum over the three scales of ``1 - cos(teacher, student)`` per pixel,
bilinearly resized to ``image_size``, Gaussian-smoothed (``smoothing_sigma``, 4), then resized
to the evaluation size; image score = the maximum of the smoothed map (as upstream).

extract_features: the three per-scale ``1 - cos`` maps at the finest teacher scale, stacked,
``[N, 3, H / 4, W / 4]`` (name "cosine_distance").

``progress: true`` (not a registry parameter) shows a progress bar over the epochs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.common.engine import EngineAdapter


class RevDist(EngineAdapter):
    #: registry.yaml's params of this method, key for key (tests/test_registry_defaults.py)
    default_config: ClassVar[dict[str, Any]] = {
        "backbone": "wide_resnet50_2",
        "pretrained": True,
        "weights_path": None,
        "image_size": 256,
        "epochs": 200,
        "batch_size": 16,
        "proj_lr": 0.001,
        "distill_lr": 0.005,
        "weight_proj": 0.2,
        "accumulation_steps": 2,
        "smoothing_sigma": 4.0,
        "seed": 0,
    }
    name = "revdist"
    feature_name = "cosine_distance"
