"""Profile selection: ``paper`` (the registry's published settings) when the cluster has a
GPU, ``quick`` (scaled down to finish on a CPU machine) otherwise, always announced."""

from __future__ import annotations

from orchestrator.errors import UserError

PROFILES = ("paper", "quick")


def choose_profile(requested: str | None, gpus: float) -> tuple[str, str]:
    """``(profile, announcement)`` for a run on a cluster with ``gpus`` GPUs."""
    if requested is not None:
        if requested not in PROFILES:
            raise UserError(f"--profile must be one of {', '.join(PROFILES)}, got {requested!r}")
        note = ""
        if requested == "paper" and gpus == 0:
            note = " (no GPU: paper settings can take hours per trial on CPU)"
        return requested, f"profile: {requested} (chosen with --profile){note}"
    if gpus > 0:
        return "paper", f"profile: paper (published settings; {gpus:g} GPU(s) in the cluster)"
    return "quick", (
        "profile: quick (no GPU in the cluster: epochs, image size and backbones are scaled "
        "down; numbers are NOT comparable with published ones; --profile paper to override)"
    )


def choose_device(requested: str, gpus: float) -> str:
    """``cpu`` / ``cuda`` for trials: ``auto`` takes the GPU when the cluster has one."""
    if requested not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and gpus == 0:
        raise UserError("--device cuda, but the Ray cluster has no GPU")
    if requested == "auto":
        return "cuda" if gpus > 0 else "cpu"
    return requested
