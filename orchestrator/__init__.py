"""Experiment orchestrator for visual anomaly detection in manufacturing."""

__version__ = "0.1.0"
