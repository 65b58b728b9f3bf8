"""Detectors: a fitted method with its validation-fitted calibration and thresholds, saved
as an MLflow Model (pyfunc) by every survey and ensemble trial, loaded by
``orchestrate predict`` and ``mlflow models serve``. ``orchestrator.models.pyfunc`` imports
MLflow; this package's top level does not."""

from orchestrator.models.detector import Detection, Detector
from orchestrator.models.thresholds import Thresholds, choose_thresholds, validation_thresholds

__all__ = ["Detection", "Detector", "Thresholds", "choose_thresholds", "validation_thresholds"]
