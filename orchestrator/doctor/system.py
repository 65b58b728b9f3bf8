"""Checks of the Python side: Python itself, torch, CUDA, faiss."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys

from orchestrator.doctor.base import (
    FAIL,
    OK,
    WARN,
    Result,
    _Context,
)

# --- Python, torch, CUDA, faiss ------------------------------------------------------------


def _requires_python() -> str | None:
    """The project's ``requires-python``: the installed metadata's, else the checkout's."""
    from orchestrator.paths import PROJECT_NAME, source_checkout

    try:
        return importlib.metadata.metadata(PROJECT_NAME).get("Requires-Python")
    except importlib.metadata.PackageNotFoundError:
        pass
    root = source_checkout()
    if root is None:
        return None
    import tomllib

    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return (meta.get("project") or {}).get("requires-python")


def check_python(ctx: _Context) -> Result:
    version = platform.python_version()
    where = f"{version} ({sys.executable})"
    required = _requires_python()
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # not a dependency of the project: compare nothing then
        return Result("python", OK, where)
    if required and version not in SpecifierSet(required):
        return Result("python", FAIL, f"{where}; the project needs Python {required}")
    return Result("python", OK, where)


def check_torch(ctx: _Context) -> Result:
    import torch
    import torchvision

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return Result(
        "torch", OK, f"torch {torch.__version__}, torchvision {torchvision.__version__} ({build})"
    )


def check_cuda(ctx: _Context) -> Result:
    import torch

    if not torch.version.cuda:
        ctx.gpus = 0
        return Result("cuda", WARN, "torch is a CPU-only build: no GPU is used")
    if not torch.cuda.is_available():
        ctx.gpus = 0
        return Result(
            "cuda",
            WARN,
            f"no CUDA device (torch built for CUDA {torch.version.cuda}): trials run on the "
            "CPU, quick profile by default",
        )
    n = torch.cuda.device_count()
    ctx.gpus = n
    names = []
    for i in range(n):
        props = torch.cuda.get_device_properties(i)
        names.append(f"{i}: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    return Result("cuda", OK, f"CUDA {torch.version.cuda}, {n} GPU(s): " + ", ".join(names))


def check_faiss(ctx: _Context) -> Result:
    import faiss

    version = getattr(faiss, "__version__", "?")
    gpu_build = hasattr(faiss, "StandardGpuResources")
    if gpu_build:
        n = faiss.get_num_gpus()
        if n > 0:
            return Result("faiss", OK, f"{version}, GPU build, {n} GPU(s)")
        if ctx.gpus:
            return Result(
                "faiss",
                WARN,
                f"{version}, GPU build, but it sees no GPU (torch sees {ctx.gpus}): its CUDA "
                "does not match the driver? PatchCore's search runs on the CPU",
            )
        return Result("faiss", OK, f"{version}, GPU build (no GPU here: searches on the CPU)")
    if ctx.gpus:
        return Result(
            "faiss",
            WARN,
            f"{version}, CPU build on a GPU host: PatchCore's nearest-neighbour search runs on "
            "the CPU (README, GPU hosts: faiss-gpu)",
        )
    return Result("faiss", OK, f"{version}, CPU build (no GPU here)")
