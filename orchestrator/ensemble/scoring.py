"""Scoring the test images of one category with an ensemble's members, the output-level
ensembles (mean, CAWPE) and the feature-level network; every calibration, weight and
normalisation fitted on the validation images only."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.ensemble.comparison import combo_name

CALIBRATORS = ("bounded_sigmoid", "platt")


def calibration_metrics(
    probs: Mapping[str, np.ndarray], y: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """ECE, Brier, NLL on the test images of each calibrator's probabilities (calibrators
    fitted on the validation set: ``Scores.calibrated``)."""
    from orchestrator.calibration import brier, ece, nll

    out = {}
    for kind, p in probs.items():
        out |= {
            f"{prefix}{kind}.ece": ece(p, y),
            f"{prefix}{kind}.brier": brier(p, y),
            f"{prefix}{kind}.nll": nll(p, y),
        }
    return out


@dataclass
class Approach:
    """One row of the comparison: a member, an output-level ensemble or the network."""

    name: str
    kind: str  # member | output | feature
    prefix: str  # of its metrics in the trial's MLflow run
    preds: Any  # adapters.base.Predictions of the test images
    probs: np.ndarray  # test image probabilities (calibrated on the validation set)


@dataclass
class Scores:
    approaches: list[Approach]
    net: Any  # the fitted FeatureEnsemble
    fit_s: float
    calibrated: dict[str, np.ndarray]  # calibrator kind -> the network's test probabilities
    calibrator: Any = None  # the network's bounded sigmoid (fitted on validation)
    thresholds: Any = None  # the network's decision thresholds (orchestrator.models)


def score_ensemble(
    members: Sequence[Any],
    names: Sequence[str],
    config: Mapping[str, Any],
    train,
    validation,
    test,
    device: str = "cpu",
    curves: Callable[[Any], Any] | None = None,
) -> Scores:
    """Score the test images with each member, the output-level ensembles and the feature
    network fitted on ``train``. Calibrators, CAWPE weights and map normalisation are fitted
    on ``validation`` (orchestrator.data.validation); no test label or mask is read here."""
    from adapters.common import seed_everything
    from orchestrator.calibration import fit_calibrator
    from orchestrator.ensemble.adapter import FeatureEnsemble
    from orchestrator.ensemble.baselines import output_ensembles
    from orchestrator.models import validation_thresholds

    cname = combo_name(names)
    yv = validation.is_anomalous
    out: list[Approach] = []
    member_preds, member_val = [], []
    for name, member in zip(names, members, strict=True):
        preds, val = member.predict(test), member.predict(validation)
        member_preds.append(preds)
        member_val.append(val)
        probs = fit_calibrator("bounded_sigmoid", val.image_scores, yv).predict(preds.image_scores)
        out.append(Approach(name, "member", f"member.{name}", preds, probs))
    for label, preds in output_ensembles(member_preds, member_val, yv).items():
        out.append(
            Approach(f"{label}[{cname}]", "output", f"output_{label}", preds, preds.image_scores)
        )
    seed_everything(int(config.get("seed", 0)))
    net = FeatureEnsemble({**config, "members": list(names)}, device=device)
    net.use_members(list(members))
    # the training curves (``curves(net)``: an adapters.training monitor); plotting only
    monitor = net.monitor = curves(net) if curves is not None else None
    t0 = time.perf_counter()
    net.fit(train)
    net.monitor = None
    fit_s = time.perf_counter() - t0
    preds, val = net.predict(test), net.predict(validation)
    if monitor is not None and yv.any() and not yv.all():
        from orchestrator.metrics.image import image_auroc
        from orchestrator.tracking.curves import log_final_point

        log_final_point(monitor, image_auroc(val.image_scores, yv))
    fitted = {kind: fit_calibrator(kind, val.image_scores, yv) for kind in CALIBRATORS}
    calibrated = {kind: c.predict(preds.image_scores) for kind, c in fitted.items()}
    out.append(
        Approach(f"feature[{cname}]", "feature", "feature", preds, calibrated["bounded_sigmoid"])
    )
    thresholds = validation_thresholds(validation, val)
    return Scores(out, net, fit_s, calibrated, fitted["bounded_sigmoid"], thresholds)
