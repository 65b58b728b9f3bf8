"""Training curves: what a training loop reports at the end of each epoch.

A caller that wants curves sets ``adapter.monitor`` to a :class:`TrainingMonitor` before
``fit``; the method's loop calls ``monitor.epoch_end(epoch, total, loss, guard)`` once per
epoch. The monitor hands every loss to its ``log`` callback (an MLflow step metric in a
survey) and, every ``every`` epochs, calls ``probe`` (e.g. validation image AUROC of the
model as trained so far) inside the loop's ``guard``, a context that puts the networks in
evaluation mode and restores their modes and the global random generators afterwards.

The curves are for plotting only: nothing reads them to pick an epoch, and a probe leaves
the training exactly as it would have run without it (tests/test_training_curves.py).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

#: step metric of the training loss (step = epoch, 1-based)
LOSS_METRIC = "train_loss"
#: prefix of the probe's step metrics (``curve_validation_image_auroc``)
PROBE_PREFIX = "curve_validation_"

Log = Callable[[str, float, int], None]  # (metric name, value, step)
Probe = Callable[[], Mapping[str, float]]


def probe_epochs(total: int, points: int) -> int:
    """Epochs between two probes for about ``points`` probes over ``total`` epochs, the last
    at the final epoch (``0``: no probes)."""
    if points <= 0 or total <= 0:
        return 0
    return max(1, math.ceil(total / points))


class TrainingMonitor:
    """Receives a training loop's epoch ends (see the module docstring).

    ``every``: epochs between probes, ``0`` for none; ``None``: from ``points`` and the
    loop's total epochs (:func:`probe_epochs`). ``skip_final``: no probe at the last epoch
    (the caller evaluates the final model anyway and logs that point itself).
    """

    def __init__(
        self,
        log: Log | None = None,
        probe: Probe | None = None,
        every: int | None = None,
        points: int = 4,
        skip_final: bool = False,
    ) -> None:
        self.log = log
        self.probe = probe
        self.every = every
        self.points = points
        self.skip_final = skip_final
        self.losses: list[tuple[int, float]] = []  # (epoch, loss)
        self.probes: list[tuple[int, dict[str, float]]] = []  # (epoch, probe values)
        self.total = 0
        self._next = 0

    def _interval(self, total: int) -> int:
        return probe_epochs(total, self.points) if self.every is None else max(self.every, 0)

    def epoch_end(
        self,
        epoch: int,
        total: int,
        loss: float | None,
        guard: Callable[[], AbstractContextManager[Any]] | None = None,
        can_probe: bool = True,
    ) -> None:
        """Epoch ``epoch`` (1-based) of ``total`` ended with mean loss ``loss`` (None: the
        loop has no loss). ``guard``: the loop's probe context; ``can_probe=False`` where the
        model cannot be probed at this epoch (inside an upstream call that runs several)."""
        if epoch <= 1 or total != self.total:  # a new fit
            self.total, self.losses, self.probes = total, [], []
            self._next = self._interval(total)
        if loss is not None and math.isfinite(float(loss)):
            self.losses.append((epoch, float(loss)))
            if self.log is not None:
                self.log(LOSS_METRIC, float(loss), epoch)
        if not self._due(epoch, can_probe):
            return
        every = self._interval(total)
        while self._next <= epoch:
            self._next += every
        with guard() if guard is not None else contextlib.nullcontext():
            values = {k: float(v) for k, v in self.probe().items()}  # type: ignore[misc]
        self.probes.append((epoch, values))
        if self.log is not None:
            for k, v in values.items():
                if math.isfinite(v):
                    self.log(f"{PROBE_PREFIX}{k}", v, epoch)

    def _due(self, epoch: int, can_probe: bool) -> bool:
        if self.probe is None or not can_probe or self._next <= 0 or epoch < self._next:
            return False
        return not (self.skip_final and epoch >= self.total)


@contextlib.contextmanager
def preserved_training(modules: Iterable[Any]) -> Iterator[None]:
    """Around a probe in the middle of training: every torch module in ``modules`` (and its
    children) in evaluation mode, then back in its own mode; the global random generators
    (Python, NumPy, torch CPU and CUDA) restored, so training continues exactly as without
    the probe."""
    import torch

    mods = [m for m in modules if isinstance(m, torch.nn.Module)]
    modes = [(sub, sub.training) for m in mods for sub in m.modules()]
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        for sub, _ in modes:  # as module.eval(), which some upstream classes override
            sub.training = False
        with torch.no_grad():
            yield
    finally:
        for sub, mode in modes:
            sub.training = mode
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
