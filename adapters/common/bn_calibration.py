"""Data-dependent batch-norm statistics for randomly initialised backbones.

A deep CNN with random weights and default running statistics (mean 0, var 1) shrinks its
activations layer after layer (EfficientNet's stride-32 maps end near 1e-11): useless for
tests with ``pretrained: false``. ``calibrate_batchnorm`` re-estimates every BatchNorm's
running statistics from a few batches of the training images (weights untouched), so random
backbones give well-scaled features. Only meant for ``pretrained: false``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
