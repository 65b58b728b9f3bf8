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
Sources: ``native`` (adapters.draem.native, the networks of adapters.draem.networks) and
``upstream`` (the upstream checkout, see adapters.draem.upstream). DRAEM has no pretrained
backbone. ``progress: true`` (not a registry parameter) shows a progress bar over the epochs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.common.engine import EngineAdapter


class DRAEM(EngineAdapter):
    #: registry.yaml's params of this method, key for key (tests/test_registry_defaults.py)
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
        "seed": 0,
    }
    name = "draem"
    feature_name = "discriminative_decoder"
    image_size_multiple = 32  # five pools in the discriminative U-Net
    uses_weights_resolver = False  # no backbone
    profile_notes: ClassVar[dict[str, str]] = {
        "quick": "DRAEM trains both sub-networks from scratch (no pretrained backbone); the "
        "quick profile's 200 CPU steps leave it near chance on some categories, so its quick "
        "numbers say little: use --profile paper (a GPU) for DRAEM"
    }
