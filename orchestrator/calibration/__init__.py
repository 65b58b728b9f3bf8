"""Calibration of anomaly scores into probabilities, and how well they are calibrated."""

from orchestrator.calibration.calibrators import (
    CALIBRATORS,
    BoundedSigmoid,
    Calibrator,
    HistogramBinning,
    Isotonic,
    Platt,
    calibrator_from_state,
    calibrator_state,
    fit_calibrator,
    make_calibrator,
)
from orchestrator.calibration.measures import (
    brier,
    calibration_report,
    cross_fit,
    ece,
    nll,
    reliability_figure,
)

__all__ = [
    "CALIBRATORS",
    "BoundedSigmoid",
    "Calibrator",
    "HistogramBinning",
    "Isotonic",
    "Platt",
    "brier",
    "calibrator_from_state",
    "calibrator_state",
    "calibration_report",
    "cross_fit",
    "ece",
    "fit_calibrator",
    "make_calibrator",
    "nll",
    "reliability_figure",
]
