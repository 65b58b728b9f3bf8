"""Scheduling of independent trials on Ray Tune (a survey's method x category grid, an
ensemble's member-combination x category grid)."""

from orchestrator.scheduling.progress import Progress
from orchestrator.scheduling.ray_session import cluster_gpus, ray_session
from orchestrator.scheduling.runner import TrialOutcome, run_trials

__all__ = ["Progress", "TrialOutcome", "cluster_gpus", "ray_session", "run_trials"]
