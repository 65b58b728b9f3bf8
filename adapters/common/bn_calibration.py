"""Data-dependent batch-norm statistics for randomly initialised backbones.

A deep CNN with random weights and default running statistics (mean 0, var 1) shrinks its
activations layer after layer (EfficientNet's stride-32 maps end near 1e-11): useless for
tests with ``pretrained: false``. ``calibrate_batchnorm`` re-estimates every BatchNorm's
running statistics from a few batches of the training images (weights untouched), so random
backbones give well-scaled features. Only meant for ``pretrained: false``.

``batchnorm_stats`` picks those statistics out of a state dict; ``modules_state`` /
``load_modules_state`` save a fitted network as its trained modules plus the batch-norm
statistics of its frozen ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn


@torch.no_grad()
def calibrate_batchnorm(
    module: nn.Module, inputs: Iterable[torch.Tensor], forward: Callable | None = None
) -> None:
    """Reset and re-estimate BatchNorm running statistics of ``module`` on ``inputs``."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    module.train()
    run = forward or module
    for x in inputs:
        run(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    module.eval()


def batchnorm_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    """The batch-norm statistics in ``module``'s state dict (``running_mean``, ``running_var``,
    ``num_batches_tracked``): what ``calibrate_batchnorm`` changes in a frozen network."""
    return {k: v for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


def modules_state(
    trained: Mapping[str, nn.Module], frozen: Mapping[str, nn.Module]
) -> dict[str, dict[str, torch.Tensor]]:
    """A fitted state: each trained module's state dict under its name and each frozen
    module's batch-norm statistics under ``<name>_bn`` (its weights are rebuilt, not saved)."""
    state = {name: m.state_dict() for name, m in trained.items()}
    state.update({f"{name}_bn": batchnorm_stats(m) for name, m in frozen.items()})
    return state


def load_modules_state(
    state: Mapping[str, Mapping[str, torch.Tensor]],
    trained: Mapping[str, nn.Module],
    frozen: Mapping[str, nn.Module],
) -> None:
    """Load a ``modules_state`` into freshly built modules and put them in eval mode."""
    for name, m in frozen.items():
        if f"{name}_bn" in state:
            m.load_state_dict(state[f"{name}_bn"], strict=False)
    for name, m in trained.items():
        m.load_state_dict(state[name])
    for m in [*trained.values(), *frozen.values()]:
        m.eval()
