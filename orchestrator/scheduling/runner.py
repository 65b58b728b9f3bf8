"""``run_trials``: run independent trials as a Ray Tune grid, with per-trial resources,
retries and a progress display; failures are collected, never fatal to the others."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import FatalTrialError, UserError
from orchestrator.scheduling.progress import Progress
from orchestrator.scheduling.ray_session import cluster_gpus

#: seconds a timed-out trial gets to unwind (its run marked FAILED) before its worker exits
#: (``$ORCHESTRATOR_TIMEOUT_GRACE`` overrides it)
TIMEOUT_GRACE_S = 30.0


def _grace() -> float:
    try:
        return float(os.environ.get("ORCHESTRATOR_TIMEOUT_GRACE", TIMEOUT_GRACE_S))
    except ValueError:
        return TIMEOUT_GRACE_S


#: A trainable: takes one spec, returns a flat dict of JSON-serialisable results.
Trainable = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass
class TrialOutcome:
    """The end of one trial: ``status`` is ``"done"`` or ``"failed"``."""

    index: int
    spec: Mapping[str, Any]
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    #: why a retry was not tried: "config" (a deterministic error), "store" (the tracking
    #: store is gone or read-only), "timeout" (--trial-timeout); None otherwise
    fatal: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


class TrialTimeout(BaseException):
    """Raised inside a trial that ran past ``--trial-timeout`` (a BaseException, so that
    library code catching ``Exception`` does not swallow it)."""

    seconds: float = 0.0

    def __str__(self) -> str:
        return f"the trial ran past --trial-timeout ({self.seconds:g} s)"


def fatal_kind(exc: BaseException) -> str | None:
    """Why ``exc`` must not be retried (see :attr:`TrialOutcome.fatal`), None if it may be."""
    if isinstance(exc, TrialTimeout):
        return "timeout"
    if isinstance(exc, FatalTrialError):
        return getattr(exc, "kind", "config")
    if isinstance(exc, UserError):
        return "config"
    return None


class _Watchdog:
    """Interrupts the calling thread with :class:`TrialTimeout` after ``seconds``. If the
    trial does not unwind within :data:`TIMEOUT_GRACE_S` seconds more (stuck in native code
    or a blocking call), the trial is recorded as timed out in Ray's key-value store
    (``marker``: a retry then fails at once instead of re-running it) and the worker exits."""

    def __init__(self, seconds: float, marker: str | None = None) -> None:
        self.target = threading.get_ident()
        self.seconds, self.marker = seconds, marker
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.fired = False
        self.exc = type("TrialTimeout", (TrialTimeout,), {"seconds": seconds})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _raise(self, exc) -> int:
        return ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.target), ctypes.py_object(exc) if exc else None
        )

    def _run(self) -> None:
        if self.done.wait(self.seconds):
            return
        with self.lock:
            if self.done.is_set():
                return
            self.fired = True
            if self._raise(self.exc) > 1:  # never more than the one thread
                self._raise(None)
        if not self.done.wait(_grace()):
            _mark_timed_out(self.marker)
            print(f"trial stuck past --trial-timeout ({self.seconds:g} s)", file=sys.stderr)
            os._exit(70)

    def cancel(self) -> None:
        """Stop watching; a TrialTimeout fired but not raised yet is withdrawn."""
        with self.lock:
            self.done.set()
            if self.fired:
                self._raise(None)


def _timeout_key(marker: str) -> bytes:
    return f"orchestrator-timeout/{marker}".encode()


def _mark_timed_out(marker: str | None) -> None:
    if not marker:
        return
    try:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(_timeout_key(marker), b"1")
    except Exception:  # noqa: BLE001 - the worker exits either way; a retry then re-runs it
        pass


def _timed_out_before(marker: str | None) -> bool:
    if not marker:
        return False
    try:
        from ray.experimental import internal_kv

        return internal_kv._internal_kv_get(_timeout_key(marker)) is not None
    except Exception:  # noqa: BLE001 - outside Ray (tests) nothing was recorded
        return False


def _fatal_result(exc: BaseException, kind: str) -> dict:
    return {"payload": "{}", "fatal": kind, "error": f"{type(exc).__name__}: {exc}"}


def _run_one(
    config: dict,
    specs: Sequence[Mapping[str, Any]],
    trial_fn: Trainable,
    timeout: float | None = None,
    run_id: str = "",
) -> dict:
    """What Tune runs in a worker: the trainable on its spec, result JSON-encoded. An error
    that a retry cannot mend comes back as a result (``fatal``, ``error``) so that Tune does
    not retry it; any other error is raised (and retried)."""
    marker = f"{run_id}/{config['index']}" if run_id and timeout else None
    if _timed_out_before(marker):  # an earlier attempt's worker exited at the timeout
        exc = type("TrialTimeout", (TrialTimeout,), {"seconds": timeout})()
        return _fatal_result(exc, "timeout")
    watchdog = None
    try:
        watchdog = _Watchdog(timeout, marker) if timeout else None
        try:
            result = trial_fn(specs[config["index"]])
        except (Exception, TrialTimeout) as exc:
            kind = fatal_kind(exc)
            if kind is None:
                raise
            return _fatal_result(exc, kind)
        finally:
            if watchdog:
                watchdog.cancel()
        return {"payload": json.dumps(dict(result or {}), default=str)}
    except TrialTimeout as exc:  # raised at the edge (in the handler, finally or return)
        if watchdog:
            watchdog.cancel()
        return _fatal_result(exc, "timeout")


def _stopper(stop_on: tuple[str, ...]):
    """Stops the whole grid (nothing new scheduled) once a trial reports a fatal error of a
    kind in ``stop_on`` (e.g. the tracking store is gone: every later trial would be lost)."""
    from ray import tune

    class _Stop(tune.Stopper):
        def __init__(self) -> None:
            self.stop = False

        def __call__(self, trial_id, result) -> bool:
            if result.get("fatal") in stop_on:
                self.stop = True
            return False

        def stop_all(self) -> bool:
            return self.stop

    return _Stop()


def fit_resources(wanted: Mapping[str, float], cluster: Mapping[str, float]) -> dict[str, float]:
    """Resources a trial may ask of this cluster: GPUs only when it has them (a trial asking
    for a GPU the cluster lacks would wait forever), CPUs at most what it has, ``memory_gb``
    as Ray's ``memory`` (bytes) at most what its largest node has (``node_memory``, else
    ``memory``), so trials that would not fit side by side in memory run one after another."""
    cpus = float(cluster.get("CPU", 1.0))
    gpus = float(cluster.get("GPU", 0.0))
    out = {"cpu": max(min(float(wanted.get("cpu", 1.0)), cpus), 0.01)}
    gpu = float(wanted.get("gpu", 0.0))
    out["gpu"] = min(gpu, gpus) if gpus > 0 else 0.0
    room = float(cluster.get("node_memory", cluster.get("memory", 0.0)))
    memory = float(wanted.get("memory_gb", 0.0)) * 2**30
    if memory > 0 and room > 0:
        out["memory"] = float(int(min(memory, room)))
    return out


def _largest_node_memory() -> float:
    """Ray's ``memory`` resource of the largest alive node (bytes; 0 when unknown)."""
    import ray

    sizes = [
        float((n.get("Resources") or {}).get("memory", 0.0)) for n in ray.nodes() if n.get("Alive")
    ]
    return max(sizes, default=0.0)


def _callback(progress: Progress | None, names: list[str], retries: int):
    from ray import tune

    class _Report(tune.Callback):
        def __init__(self) -> None:
            self.errors: dict[int, int] = {}

        def _name(self, trial) -> str:
            return names[trial.config["index"]]

        def on_trial_start(self, iteration, trials, trial, **info):
            if progress:
                progress.started(self._name(trial))

        def on_trial_complete(self, iteration, trials, trial, **info):
            if progress:
                fatal = (trial.last_result or {}).get("fatal")
                if fatal:
                    progress.errored(self._name(trial), final=True)
                else:
                    progress.finished(self._name(trial))

        def on_trial_recover(self, iteration, trials, trial, **info):
            if progress:
                progress.errored(self._name(trial), final=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            if progress:
                progress.errored(self._name(trial), final=True)

    return _Report()


def run_trials(
    specs: Sequence[Mapping[str, Any]],
    trainable: Trainable,
    resources_per_spec: Sequence[Mapping[str, float]] | Mapping[str, float] | None = None,
    max_concurrent: int | None = None,
    retries: int = 0,
    progress: Progress | bool = True,
    names: Sequence[str] | None = None,
    label: str = "trials",
    reuse_workers: bool = True,
    trial_timeout: float | None = None,
    stop_on: tuple[str, ...] = ("store",),
) -> list[TrialOutcome]:
    """Run ``trainable(spec)`` for every spec as one Ray Tune grid; Ray must be initialised
    (see :func:`orchestrator.scheduling.ray_session`).

    ``trainable`` must be picklable (a module-level function); its returned dict comes back in
    ``TrialOutcome.result``. ``resources_per_spec``: one ``{"cpu", "gpu", "memory_gb"}`` dict
    per spec (or one for all), fitted to the cluster (:func:`fit_resources`). A raising trial
    is retried ``retries`` times, then reported as ``failed`` with its error; the others run
    on. Outcomes are in spec order.
    ``reuse_workers``: a worker process runs several trials in turn (imports of torch and
    friends paid once per worker, not once per trial). ``trial_timeout``: seconds a trial may
    run (then it fails, not retried). Errors a retry cannot mend (:func:`fatal_kind`) are not
    retried; one of a kind in ``stop_on`` stops the grid (trials not started are reported
    ``failed`` with "not run").
    """
    import ray
    from ray import tune

    if not specs:
        return []
    cluster = dict(ray.cluster_resources())
    cluster.setdefault("GPU", cluster_gpus())
    cluster["node_memory"] = _largest_node_memory()
    if resources_per_spec is None or isinstance(resources_per_spec, Mapping):
        resources = [fit_resources(resources_per_spec or {}, cluster)] * len(specs)
    else:
        resources = [fit_resources(r, cluster) for r in resources_per_spec]
    names = list(names) if names else [f"trial-{i}" for i in range(len(specs))]
    if progress is True:
        progress = Progress(len(specs), label=label)
    prog = progress or None

    fn = tune.with_parameters(
        _run_one,
        specs=list(specs),
        trial_fn=trainable,
        timeout=trial_timeout,
        run_id=uuid.uuid4().hex,
    )
    fn = tune.with_resources(fn, lambda config: resources[config["index"]])
    storage = tempfile.mkdtemp(prefix="orchestrate-tune-")
    quiet = {n: logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray.air")}
    levels = {n: lg.level for n, lg in quiet.items()}
    for lg in quiet.values():  # errors are reported by the progress display and outcomes
        lg.setLevel(logging.CRITICAL)
    try:
        tuner = tune.Tuner(
            fn,
            param_space={"index": tune.grid_search(list(range(len(specs))))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent or 0, reuse_actors=reuse_workers
            ),
            run_config=tune.RunConfig(
                name=label,
                storage_path=storage,
                verbose=0,
                stop=_stopper(stop_on),
                callbacks=[_callback(prog, names, retries)],
                failure_config=tune.FailureConfig(max_failures=retries, fail_fast=False),
            ),
        )
        grid = tuner.fit()
        outcomes: dict[int, TrialOutcome] = {}
        for res in grid:
            if not res.config:  # never started (e.g. the run was interrupted)
                continue
            idx = int(res.config["index"])
            if res.error is not None:
                err = _error_text(res.error)
                outcomes[idx] = TrialOutcome(idx, specs[idx], "failed", error=err)
            elif (res.metrics or {}).get("fatal"):
                m = res.metrics
                outcomes[idx] = TrialOutcome(
                    idx, specs[idx], "failed", error=str(m.get("error")), fatal=str(m["fatal"])
                )
            else:
                payload = (res.metrics or {}).get("payload")
                result = json.loads(payload) if payload else {}
                outcomes[idx] = TrialOutcome(idx, specs[idx], "done", result=result)
    finally:
        for n, lg in quiet.items():
            lg.setLevel(levels[n])
        if prog:
            prog.close()
        shutil.rmtree(storage, ignore_errors=True)
    return [
        outcomes.get(i, TrialOutcome(i, specs[i], "failed", error="not run"))
        for i in range(len(specs))
    ]


def _error_text(err: BaseException) -> str:
    """The innermost error of a Ray/Tune exception, one line."""
    cause = getattr(err, "cause", None) or err.__cause__
    msg = str(cause or err).strip()
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__
