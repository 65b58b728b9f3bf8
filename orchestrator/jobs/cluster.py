"""Where a job's trials run: a Ray cluster (local on loopback, or joined), or one by one in
this process (``--in-process``); the profile and device chosen for it, announced."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.jobs.options import JobOptions


@dataclass
class Cluster:
    cpus: float
    gpus: float
    profile: str  # paper | quick (orchestrator.profiles)
    device: str  # cpu | cuda: what trials asking for a GPU run on
    run_trials: Callable[..., list]  # orchestrator.scheduling.run_trials, or run_in_process

    def run(self, specs: list, trainable, resources: list, opts: JobOptions, label: str) -> list:
        """The trials of ``specs`` (each with its ``run_name``) as the options say: at most
        ``max_concurrent`` at once, ``retries``, ``trial_timeout``; outcomes in spec order."""
        return self.run_trials(
            specs,
            trainable,
            resources,
            max_concurrent=opts.max_concurrent,
            retries=opts.retries,
            names=[s["run_name"] for s in specs],
            label=label,
            trial_timeout=opts.trial_timeout,
        )

    def trial_device(self, wants_gpu: bool) -> str:
        """A method's trials use the GPU only when its resources ask for one."""
        return self.device if wants_gpu and self.gpus > 0 else "cpu"


@contextlib.contextmanager
def open_cluster(
    opts: JobOptions, address: str | None, say: Callable[[str], None]
) -> Iterator[Cluster]:
    """Start (or join) Ray for the job, choose profile and device, announce them; stops Ray
    on leaving."""
    from orchestrator.profiles import choose_device, choose_profile
    from orchestrator.scheduling import ray_session, run_trials

    if opts.in_process:
        session, runner = contextlib.nullcontext(_this_machine()), run_in_process
    else:
        session, runner = ray_session(address, opts.num_cpus), run_trials
    with session as resources:
        gpus = float(resources.get("GPU", 0.0))
        cpus = float(resources.get("CPU", 0.0))
        profile, note = choose_profile(opts.profile, gpus)
        device = choose_device(opts.device, gpus)
        say(note)
        where = "in this process" if opts.in_process else "ray"
        if gpus == 0:
            say(f"{where}: {cpus:g} CPU(s), no GPU -> trials run CPU-only")
        else:
            say(f"{where}: {cpus:g} CPU(s), {gpus:g} GPU(s)")
        yield Cluster(cpus, gpus, profile, device, runner)


def _this_machine() -> dict[str, float]:
    """What the in-process runner has: this machine's CPUs and CUDA devices."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


def run_in_process(specs, trainable, *args: Any, **kwargs: Any) -> list:
    """``run_trials`` without Ray: the trials one after another here (debugging, tests). As
    with Ray, a lost tracking store stops the rest ("not run"); a Ctrl-C a finalizer
    swallowed stops it before the next trial (orchestrator.interrupts)."""
    from orchestrator import interrupts
    from orchestrator.scheduling import TrialOutcome
    from orchestrator.scheduling.runner import fatal_kind

    out, stopped = [], False
    for i, spec in enumerate(specs):
        interrupts.check()
        if stopped:
            out.append(TrialOutcome(i, spec, "failed", error="not run"))
            continue
        try:
            out.append(TrialOutcome(i, spec, "done", result=dict(trainable(spec))))
        except Exception as exc:  # noqa: BLE001 - reported like a failed Ray trial
            fatal = fatal_kind(exc)
            error = f"{type(exc).__name__}: {exc}"
            out.append(TrialOutcome(i, spec, "failed", error=error, fatal=fatal))
            stopped = fatal == "store"
    interrupts.check()
    return out
