"""Decision thresholds of a detector, chosen on the validation protocol's images only.

Image threshold: the score that maximises F1 on the labelled validation images (good ones and
the protocol's synthetic anomalies, orchestrator.data.validation); where the validation set
has no anomalies, the :data:`NORMAL_QUANTILE` quantile of its normal images' scores (about one
good image in a hundred flagged). Pixel threshold (the predicted region in overlays): the same
F1 rule over the validation pixels, the anomalies' masks as ground truth, or the
:data:`NORMAL_PIXEL_QUANTILE` quantile of the normal pixels where no mask marks any.
An image or pixel is predicted anomalous when its score is at least the threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from orchestrator.metrics.image import f1_max

#: quantile of the normal validation images' scores used when no anomaly is there to fit F1
NORMAL_QUANTILE = 0.99
#: the same for pixels
NORMAL_PIXEL_QUANTILE = 0.999
#: at most this many pixels enter the pixel F1 curve (an even stride over all of them)
MAX_PIXELS = 2_000_000


@dataclass(frozen=True)
class Thresholds:
    image: float
    pixel: float
    image_rule: str  # "validation-f1" | "normal-quantile-0.99"
    pixel_rule: str
    validation_f1: float | None = None  # image F1 on the validation set at ``image``

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def choose_thresholds(
    scores: np.ndarray, anomalous: np.ndarray, maps: np.ndarray, masks: np.ndarray
) -> Thresholds:
    """Thresholds from validation predictions: image ``scores`` with their labels
    ``anomalous``, anomaly ``maps`` ``[N, H, W]`` with the merged ``masks`` (same shape)."""
    scores = np.asarray(scores, dtype=np.float64)
    anomalous = np.asarray(anomalous, dtype=bool)
    if anomalous.any() and (~anomalous).any():
        f1, image = f1_max(scores, anomalous)
        image_rule = "validation-f1"
    else:
        normal = scores[~anomalous] if (~anomalous).any() else scores
        image, f1 = float(np.quantile(normal, NORMAL_QUANTILE)), None
        image_rule = f"normal-quantile-{NORMAL_QUANTILE:g}"
    flat_maps = np.asarray(maps, dtype=np.float32).reshape(-1)
    flat_masks = np.asarray(masks, dtype=bool).reshape(-1)
    step = max(1, flat_maps.size // MAX_PIXELS)
    flat_maps, flat_masks = flat_maps[::step], flat_masks[::step]
    if flat_masks.any() and (~flat_masks).any():
        _, pixel = f1_max(flat_maps, flat_masks)
        pixel_rule = "validation-f1"
    else:
        pixel = float(np.quantile(flat_maps[~flat_masks], NORMAL_PIXEL_QUANTILE))
        pixel_rule = f"normal-quantile-{NORMAL_PIXEL_QUANTILE:g}"
    return Thresholds(image, pixel, image_rule, pixel_rule, f1)


def validation_thresholds(validation, val_preds) -> Thresholds:
    """:func:`choose_thresholds` of a method's predictions ``val_preds`` on the validation
    set ``validation`` (a SampleSet of the validation protocol: labels and masks)."""
    return choose_thresholds(
        val_preds.image_scores,
        validation.is_anomalous,
        val_preds.anomaly_maps,
        validation.load_masks(),
    )
