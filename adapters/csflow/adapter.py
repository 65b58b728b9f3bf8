"""CS-Flow (Rudolph et al., WACV 2022) behind the adapter contract.

fit: a frozen EfficientNet (``extractor``; paper: efficientnet-b5, the output of its
304-channel stage at stride 32) embeds each training image at ``image_size``, half and quarter
of it; the cross-scale flow is trained on these three maps by maximum likelihood (NLL of a
standard normal plus log-determinant) for ``meta_epochs * sub_epochs`` epochs with Adam
(``lr_init``, eps 1e-4, weight decay 1e-5) and gradient-norm clipping at 1, as upstream. No
selection on test data (upstream's per-meta-epoch test evaluation is not done).

predict: image score = mean of ``z**2 / 2`` over all latent entries of all three scales;
anomaly map = channel mean of ``z**2`` at the largest scale, bilinearly resized to the
evaluation size (both as upstream's train.py / evaluate.py).

``pretrained: false`` (tests): the random backbone's batch-norm statistics are estimated on
the training images first (adapters.common.bn_calibration), else its features vanish.

extract_features: the latents ``z`` of the three scales, bilinearly resized to the largest
scale and concatenated along channels, ``[N, 3 * C, H / 32, W / 32]`` (name "latents").

Sources: ``native`` (adapters.csflow.native, torchvision EfficientNet, the flow of
adapters.csflow.networks) and ``upstream`` (the upstream checkout's flow and extractor with
efficientnet_pytorch, see adapters.csflow.upstream). ``image_size`` must be a multiple of 128
per axis (three scales at stride 32), as upstream. ``progress: true`` (not a registry
parameter) shows a progress bar over the epochs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.common.engine import EngineAdapter
from adapters.common.weights import canonical


def backbone_name(extractor: str, source: str) -> str:
    """The backbone ``source`` builds for ``extractor``: the native source torchvision's
    ``efficientnet_bN`` for ``efficientnet-bN`` (``efficientnet_lite0``, efficientnet_pytorch
    layout, for the Lite); upstream ``efficientnet_pytorch`` networks (``efficientnet-bN``; the
    Lite, same layout, is swapped in at run time)."""
    if source == "upstream":
        return canonical(str(extractor))
    return str(extractor).replace("-", "_")


class CSFlow(EngineAdapter):
    #: registry.yaml's params of this method, key for key (tests/test_registry_defaults.py)
    default_config: ClassVar[dict[str, Any]] = {
        "extractor": "efficientnet-b5",
        "pretrained": True,
        "weights_path": None,
        "image_size": 768,
        "n_coupling_blocks": 4,
        "clamp": 3.0,
        "fc_internal": 1024,
        "kernel_sizes": [3, 3, 3, 5],
        "lr_init": 2e-4,
        "meta_epochs": 4,
        "sub_epochs": 60,
        "batch_size": 16,
        "seed": 0,
    }
    name = "csflow"
    feature_name = "latents"
    image_size_multiple = 128  # three scales at stride 32

    @classmethod
    def backbones(cls, config, source: str) -> list[tuple[str, bool, str | None, int]]:
        """The ``extractor`` under the name the source builds it by."""
        name = backbone_name(config["extractor"], source)
        return super().backbones({**config, "backbone": name}, source)
