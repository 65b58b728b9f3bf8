"""The survey: every (method, category) pair a Ray Tune trial, every trial an MLflow child
run under one parent run, a summary table at the end. ``orchestrate survey`` calls
:func:`run_survey`; the per-trial work is :func:`survey_trial` (runs in a Ray worker). The
machinery it shares with the ensemble job is in :mod:`orchestrator.jobs`."""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator.jobs import JobOptions, JobResult

if TYPE_CHECKING:
    import numpy as np

    from adapters.base import Adapter, Predictions
    from adapters.training import TrainingMonitor
    from orchestrator.calibration import Calibrator
    from orchestrator.data.types import SampleSet
    from orchestrator.jobs import Cluster, ParentRun, Prepared
    from orchestrator.models import Thresholds

#: Metrics every finished trial logs besides evaluate()'s.
TRIAL_EXTRA_METRICS = ("fit_seconds", "predict_seconds", "peak_memory_mb")


@dataclass
class SurveyOptions(JobOptions):
    methods: list[str] | None = None
    experiment: str = "survey"
    retries: int = 1
    save_maps: bool = False  # also log the test set's anomaly maps (official LOCO layout)


@dataclass
class SurveyResult(JobResult):
    skipped: int = 0  # trials a resumed survey found finished


def _peak_memory_mb(device: str) -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    if device.startswith("cuda"):
        import torch

        peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
    return float(peak)


@dataclass
class Scored:
    """A fitted adapter's test predictions and what was fitted on validation data only."""

    preds: Predictions
    probs: np.ndarray  # test image probabilities (bounded sigmoid fitted on validation)
    validation: dict[str, float]  # the adapter's metrics on the validation set
    fit_s: float
    predict_s: float
    calibrator: Calibrator  # the bounded sigmoid behind ``probs``
    thresholds: Thresholds  # image and pixel decision thresholds (validation F1)


def fit_and_score(
    adapter: Adapter,
    train: SampleSet,
    validation: SampleSet,
    test: SampleSet,
    monitor: TrainingMonitor | None = None,
) -> Scored:
    """Fit on ``train``, predict ``test``, and calibrate the test scores with a bounded
    sigmoid fitted on the validation set (orchestrator.data.validation), whose predictions
    also fix the decision thresholds (orchestrator.models.thresholds). Nothing here reads a
    test label or mask: they are only for the metrics computed from the result.
    ``monitor``: the training curves' (adapters.training), for the time of ``fit``."""
    from orchestrator.calibration import fit_calibrator
    from orchestrator.metrics import evaluate
    from orchestrator.models import validation_thresholds

    t0 = time.perf_counter()
    adapter.monitor = monitor
    try:
        adapter.fit(train)
    finally:
        adapter.monitor = None
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = adapter.predict(test)
    predict_s = time.perf_counter() - t0
    val_preds = adapter.predict(validation)
    cal = fit_calibrator("bounded_sigmoid", val_preds.image_scores, validation.is_anomalous)
    thresholds = validation_thresholds(validation, val_preds)
    keep = ("image_auroc", "pixel_auroc")
    val_metrics = {k: v for k, v in evaluate(validation, val_preds).items() if k in keep}
    probs = cal.predict(preds.image_scores)
    return Scored(preds, probs, val_metrics, fit_s, predict_s, cal, thresholds)


def survey_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One (method, category) trial: fit, predict, evaluate, log everything to a child run.

    Runs in a Ray worker; everything it needs is in ``spec`` (plain data). Raises on failure
    after the child run is marked FAILED with the traceback.
    """
    from adapters.common import seed_everything
    from orchestrator.calibration import brier, ece, nll
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_sets
    from orchestrator.jobs.plan import (
        adapter_from_spec,
        detector_info,
        enter_worker,
        trial_params,
        trial_tags,
    )
    from orchestrator.metrics import evaluate
    from orchestrator.models import Detector
    from orchestrator.models.pyfunc import save_detector_model
    from orchestrator.reports.maps import write_official_maps
    from orchestrator.reports.trial import decision_metrics, write_trial_artifacts
    from orchestrator.tracking.curves import log_final_point, trial_monitor
    from orchestrator.tracking.trials import open_trial_run

    enter_worker(spec)
    name = spec["run_name"]
    with (
        open_trial_run(spec, name) as run,
        tempfile.TemporaryDirectory(prefix="trial-") as tmp,
    ):
        run.log_params(trial_params(spec, {spec["method"]: spec["config"]}))
        run.log_category(spec)
        adapter = adapter_from_spec(spec)
        run.set_tags(trial_tags(adapter, spec))
        cat = load_category(Path(spec["category_dir"]))
        test = cat.split("test")
        seed_everything(int(adapter.config.get("seed", 0)))
        train, validation = protocol_sets(cat)  # written once per category (cached)
        monitor = trial_monitor(run, adapter, validation, int(spec.get("curve_points", 4)))
        scored = fit_and_score(adapter, train, validation, test, monitor)
        log_final_point(monitor, scored.validation.get("image_auroc"))
        preds, probs = scored.preds, scored.probs
        metrics = dict(evaluate(test, preds))
        metrics.update(fit_seconds=scored.fit_s, predict_seconds=scored.predict_s)
        metrics["peak_memory_mb"] = _peak_memory_mb(spec["device"])
        metrics.update({f"validation_{k}": v for k, v in scored.validation.items()})
        y = test.is_anomalous
        metrics.update(ece=ece(probs, y), brier=brier(probs, y), nll=nll(probs, y))
        metrics.update(decision_metrics(preds.image_scores, y, scored.thresholds))
        detector = Detector(adapter, scored.calibrator, scored.thresholds, detector_info(spec))
        out = Path(tmp)
        write_trial_artifacts(out, test, preds, probs, name, scored.thresholds)
        if spec.get("save_maps"):
            write_official_maps(out / "anomaly_maps", test, preds.anomaly_maps)
        save_detector_model(out / "model", detector)
        run.log_metrics(metrics)
        run.log_artifacts(out)
        return {"run_id": run.run_id, **metrics}


@dataclass
class _Plan:
    specs: list[dict[str, Any]]
    resources: list[dict[str, float]]
    setups: list  # orchestrator.jobs.MethodSetup, one per method


def _plan(opts: SurveyOptions, prep: Prepared, cluster: Cluster, common: dict[str, Any]) -> _Plan:
    from orchestrator.data import fingerprint
    from orchestrator.data.preprocess import key_part
    from orchestrator.data.validation import PROTOCOL
    from orchestrator.jobs import method_spec, setup_method
    from orchestrator.jobs.plan import trial_name, trial_resources
    from orchestrator.tracking import trial_key

    plan = _Plan([], [], [])
    fps = {c.name: fingerprint(c) for c in prep.categories}
    for m in prep.methods:
        ms = setup_method(
            prep.registry, m, opts.source, cluster.profile, prep.overrides.get(m), opts.allow_dirty
        )
        plan.setups.append(ms)
        device = cluster.trial_device(ms.resources.gpu > 0)
        for c, seed in itertools.product(prep.categories, opts.seeds or [None]):
            name = trial_name(m, c.name, seed)
            spec = method_spec(ms, c, fps[c.name], seed, common, device, name)
            spec["save_maps"] = opts.save_maps
            spec["key"] = spec["tags"]["trial_key"] = trial_key(
                protocol=PROTOCOL,
                method=m,
                category=c.name,
                config=spec["config"],
                dataset_fingerprint=fps[c.name],
                source=ms.source,
                commit=ms.commit,
                profile=cluster.profile,
                **key_part(spec["preprocess"]),  # another preprocessing: another trial
            )
            plan.specs.append(spec)
            plan.resources.append(trial_resources(ms.resources, device))
    return plan


def _row(spec: Mapping[str, Any], run=None, error: str | None = None) -> dict[str, Any]:
    from orchestrator.data.preprocess import label

    row: dict[str, Any] = {
        "method": spec["method"],
        "category": spec["category"],
        "profile": spec["profile"],
        "source": spec["source"],
        "seed": spec["config"].get("seed"),
        "preprocess": label(spec.get("preprocess", {})),
        "status": "done" if run is not None else "failed",
    }
    if run is not None:
        row["run_id"] = run.info.run_id
        row.update(run.data.metrics)
    if error:
        row["error"] = error
    return row


def check_options(opts: SurveyOptions) -> None:
    """The options' own mistakes, before anything is read or started."""
    from orchestrator import preflight

    preflight.run_options(opts)
    preflight.named("--methods", opts.methods)


def run_survey(opts: SurveyOptions, out: TextIO | None = None) -> SurveyResult:
    """Run (or resume) a survey; prints announcements, progress and the summary table.

    Everything deterministic is checked before Ray starts (options, registry, parameter
    types, the dataset, the tracking store and the Ray address): one UserError. During the
    run, a trial whose worker died ends FAILED; Ctrl-C ends the parent run KILLED (exit 130;
    ``--resume`` continues); a tracking store deleted or frozen stops the scheduling and the
    finished trials' figures are written locally (:class:`~orchestrator.errors.Aborted`).
    """
    from orchestrator.jobs import ParentRun, guarded, open_cluster, prepare
    from orchestrator.jobs.parent import ui_lines
    from orchestrator.jobs.plan import weights_notice
    from orchestrator.reports import console_summary
    from orchestrator.reports.curves import write_training_curves
    from orchestrator.tracking import project_commit

    out = out or sys.stdout
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    check_options(opts)
    prep = prepare(opts, opts.methods)
    parent = ParentRun(prep.uri, prep.experiment_id, prep.store_id, "survey")
    commit = project_commit()
    with guarded(parent, say), open_cluster(opts, prep.address, say) as cluster:
        profile = cluster.profile
        common = parent.begin(opts, prep, profile, commit, methods=",".join(prep.methods))
        plan = _plan(opts, prep, cluster, common)
        todo = parent.pending(plan.specs, opts, say)
        skipped = len(plan.specs) - len(todo)
        for line in weights_notice(plan.setups, profile):
            say(line)
        seeds = f" x {len(opts.seeds)} seeds" if opts.seeds else ""
        say(
            f"survey: {len(prep.methods)} method(s) x {len(prep.categories)} categor(y/ies)"
            f"{seeds} = {len(plan.specs)} trials: {', '.join(prep.methods)}"
        )
        todo_specs = [plan.specs[i] for i in todo]
        outcomes = cluster.run(
            todo_specs, survey_trial, [plan.resources[i] for i in todo], opts, "survey"
        )
    # Ray has stopped: no worker writes any more
    errors = {o.spec["key"]: o.error for o in outcomes if not o.ok}
    rows = parent.conclude(
        outcomes,
        rows=lambda: _rows_from_store(plan, parent, errors),
        local_rows=lambda: _rows_reported(outcomes),
        output_dir=opts.output_dir,
        tags=lambda rows: {
            "failed_trials": sum(r["status"] != "done" for r in rows),
            "trials": len(rows),
        },
        extra=lambda rows, out_dir: write_training_curves(prep.uri, rows, out_dir),
    )
    failed = sum(r["status"] != "done" for r in rows)
    say("")
    say(console_summary(rows))
    for line in ui_lines(prep.uri, prep.experiment_id, parent.run_id):
        say(line)
    return SurveyResult(rows, parent.run_id, prep.experiment_id, prep.uri, failed, skipped)


def _rows_from_store(plan: _Plan, parent: ParentRun, errors) -> list[dict[str, Any]]:
    """One row per planned trial from what the store holds."""
    from orchestrator.tracking import finished_trials

    done = finished_trials(parent.uri, parent.experiment_id, parent.run_id)
    rows = []
    for s in plan.specs:
        run = done.get(s["key"])
        rows.append(_row(s, run, None if run else errors.get(s["key"], "no finished run")))
    return rows


def _rows_reported(outcomes) -> list[dict[str, Any]]:
    """One row per trial run now, from what it reported through Ray (the store is lost)."""
    rows = []
    for o in outcomes:
        row = _row(o.spec, None, None if o.ok else o.error)
        if o.ok:
            row["status"] = "done"
            row.update({k: v for k, v in (o.result or {}).items() if k != "run_id"})
            row["run_id"] = (o.result or {}).get("run_id", "")
        rows.append(row)
    return rows
