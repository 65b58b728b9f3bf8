"""The survey: every (method, category) pair a Ray Tune trial, every trial an MLflow child
run under one parent run, a summary table at the end. ``orchestrate survey`` calls
:func:`run_survey`; the per-trial work is :func:`survey_trial` (runs in a Ray worker)."""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from orchestrator.errors import Aborted, UserError

if TYPE_CHECKING:
    import numpy as np

    from adapters.base import Adapter, Predictions
    from orchestrator.data.types import SampleSet

#: Metrics every finished trial logs besides evaluate()'s.
TRIAL_EXTRA_METRICS = ("fit_seconds", "predict_seconds", "peak_memory_mb")


@dataclass
class SurveyOptions:
    dataset: str = "synthetic"
    dataset_root: Path | None = None
    categories: list[str] | None = None
    methods: list[str] | None = None
    source: str = "auto"
    sets: list[str] = field(default_factory=list)  # "method.key=value"
    tracking_uri: str | None = None
    ray_address: str | None = None
    max_concurrent: int | None = None
    resume: bool = False
    experiment: str = "survey"
    profile: str | None = None
    registry: Path | None = None
    retries: int = 1
    device: str = "auto"
    num_cpus: int | None = None
    output_dir: Path | None = None  # a local copy of the summary reports
    seeds: list[int] | None = None  # one trial per seed (None: each config's own seed)
    validate: bool = True  # run the dataset validator before Ray starts
    trial_timeout: float | None = None  # seconds a trial may run


@dataclass
class SurveyResult:
    rows: list[dict[str, Any]]
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    skipped: int
    failed: int

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def parse_sets(sets: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["patchcore.coreset_percentage=0.01", ...]`` -> ``{"patchcore": {...}}`` (values
    parsed as YAML: numbers, booleans, lists)."""
    out: dict[str, dict[str, Any]] = {}
    for item in sets:
        name, eq, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not eq or not dot or not method or not key:
            raise UserError(f"--set expects method.key=value, got {item!r}")
        if method not in methods:
            raise UserError(f"--set {item}: method {method!r} is not in this survey")
        try:
            out.setdefault(method, {})[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--set {item}: cannot parse value ({exc})") from exc
    return out


def _peak_memory_mb(device: str) -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    if device.startswith("cuda"):
        import torch

        peak = max(peak, torch.cuda.max_memory_allocated() / 2**20)
    return float(peak)


def _sample_indices(labels: Sequence[str], per_label: int = 2) -> list[int]:
    picked: list[int] = []
    for lab in ("good", "logical", "structural", "anomaly"):
        idx = [i for i, x in enumerate(labels) if x == lab]
        if idx:
            step = max(1, len(idx) // per_label)
            picked += idx[::step][:per_label]
    return picked


def write_trial_artifacts(out: Path, test, preds, probs, title: str) -> None:
    """scores.csv, overlays.png, roc.png, reliability.png for one trial into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from orchestrator.calibration import reliability_figure
    from orchestrator.reports import overlay_grid, roc_figure

    labels = test.labels
    pd.DataFrame(
        {
            "key": [s.key for s in test],
            "label": labels,
            "score": preds.image_scores,
            "probability": probs if probs is not None else np.nan,
        }
    ).to_csv(out / "scores.csv", index=False)
    idx = _sample_indices(list(labels))
    sub = test.subset(idx)
    fig = overlay_grid(
        sub.load_images(),
        preds.anomaly_maps[idx],
        [f"{labels[i]} {test[i].image_id}: {preds.image_scores[i]:.3g}" for i in idx],
        masks=sub.load_masks(),
    )
    fig.savefig(out / "overlays.png", dpi=90)
    plt.close(fig)
    fig = roc_figure(preds.image_scores, test.is_anomalous, labels, title=title)
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    if probs is not None:
        fig = reliability_figure(probs, test.is_anomalous, title=f"{title} (bounded sigmoid)")
        fig.savefig(out / "reliability.png", dpi=100)
        plt.close(fig)


@dataclass
class Scored:
    """A fitted adapter's test predictions and what was fitted on validation data only."""

    preds: Predictions
    probs: np.ndarray  # test image probabilities (bounded sigmoid fitted on validation)
    validation: dict[str, float]  # the adapter's metrics on the validation set
    fit_s: float
    predict_s: float


def fit_and_score(
    adapter: Adapter, train: SampleSet, validation: SampleSet, test: SampleSet
) -> Scored:
    """Fit on ``train``, predict ``test``, and calibrate the test scores with a bounded
    sigmoid fitted on the validation set (orchestrator.data.validation). Nothing here reads a
    test label or mask: they are only for the metrics computed from the result."""
    from orchestrator.calibration import fit_calibrator
    from orchestrator.metrics import evaluate

    t0 = time.perf_counter()
    adapter.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = adapter.predict(test)
    predict_s = time.perf_counter() - t0
    val_preds = adapter.predict(validation)
    cal = fit_calibrator("bounded_sigmoid", val_preds.image_scores, validation.is_anomalous)
    keep = ("image_auroc", "pixel_auroc")
    val_metrics = {k: v for k, v in evaluate(validation, val_preds).items() if k in keep}
    return Scored(preds, cal.predict(preds.image_scores), val_metrics, fit_s, predict_s)


def survey_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One (method, category) trial: fit, predict, evaluate, log everything to a child run.

    Runs in a Ray worker; everything it needs is in ``spec`` (plain data). Raises on failure
    after the child run is marked FAILED with the traceback.
    """
    from adapters.common import seed_everything
    from orchestrator.calibration import brier, ece, nll
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_sets
    from orchestrator.metrics import evaluate
    from orchestrator.registry import import_adapter, run_tags
    from orchestrator.tracking.trials import open_trial_run

    name = spec.get("run_name") or f"{spec['method']}/{spec['category']}"
    with (
        open_trial_run(spec, name) as run,
        tempfile.TemporaryDirectory(prefix="trial-") as tmp,
    ):
        run.log_params(spec["config"])
        # The driver resolved config and source (Registry.build's work); importing only this
        # method's adapter keeps a worker from importing every registered method.
        cls = import_adapter(spec["adapter"], spec.get("adapter_dir"))
        adapter = cls(spec["config"], device=spec["device"], source=spec["source"])
        adapter.upstream_commit = spec["upstream_commit"] or None
        adapter.vendor_clean = spec["vendor_clean"]
        adapter.checkout = spec.get("checkout")
        run.set_tags({**run_tags(adapter), "method": spec["method"], "adapter": spec["adapter"]})
        cat = load_category(Path(spec["category_dir"]))
        test = cat.split("test")
        seed_everything(int(adapter.config.get("seed", 0)))
        with tempfile.TemporaryDirectory(prefix="validation-") as val_dir:
            train, validation = protocol_sets(cat, val_dir)
            scored = fit_and_score(adapter, train, validation, test)
        preds, probs = scored.preds, scored.probs
        metrics = dict(evaluate(test, preds))
        metrics.update(fit_seconds=scored.fit_s, predict_seconds=scored.predict_s)
        metrics["peak_memory_mb"] = _peak_memory_mb(spec["device"])
        metrics.update({f"validation_{k}": v for k, v in scored.validation.items()})
        y = test.is_anomalous
        metrics.update(ece=ece(probs, y), brier=brier(probs, y), nll=nll(probs, y))
        out = Path(tmp)
        write_trial_artifacts(out, test, preds, probs, name)
        adapter.save(out / "model")
        run.log_metrics(metrics)
        run.log_artifacts(out)
        return {"run_id": run.run_id, **metrics}


@dataclass
class _Plan:
    specs: list[dict[str, Any]]
    resources: list[dict[str, float]]
    names: list[str]
    weights: dict[str, dict[str, str]]  # method -> weights tags (where its backbone is from)
    notes: dict[str, str]  # method -> what its adapter says about the profile in use


def _plan(
    opts: SurveyOptions,
    registry,
    methods: list[str],
    categories,
    overrides: dict[str, dict[str, Any]],
    profile: str,
    device: str,
    gpus: float,
    common: dict[str, Any],
) -> _Plan:
    from orchestrator.data import fingerprint
    from orchestrator.data.validation import PROTOCOL
    from orchestrator.tracking import trial_key
    from orchestrator.vendor import resolve_source

    plan = _Plan([], [], [], {}, {})
    fps = {c.name: fingerprint(c) for c in categories}
    for m in methods:
        entry = registry.get(m)
        cls = entry.adapter_class()
        source, state = resolve_source(entry, cls, opts.source)
        commit = (state.head if state else entry.commit) if source == "upstream" else ""
        base = entry.resolved_config(profile, overrides.get(m))
        # fails here, before any trial runs, when a pretrained backbone's weights are missing
        plan.weights[m] = cls.weights_tags(base, source, verify=True)
        plan.notes[m] = cls.profile_notes.get(profile, "")
        res = entry.resources
        trial_device = device if res.gpu > 0 and gpus > 0 else "cpu"
        for c, seed in itertools.product(categories, opts.seeds or [None]):
            config = dict(base) if seed is None else {**base, "seed": int(seed)}
            name = f"{m}/{c.name}" + (f"/seed{seed}" if seed is not None else "")
            key = trial_key(
                protocol=PROTOCOL,
                method=m,
                category=c.name,
                config=config,
                dataset_fingerprint=fps[c.name],
                source=source,
                commit=commit,
                profile=profile,
            )
            tags = {
                "method": m,
                "category": c.name,
                "dataset": opts.dataset,
                "dataset_fingerprint": fps[c.name],
                "source": source,
                "upstream_commit": commit or "",
                "device": trial_device,
                "profile": profile,
                "seed": str(config.get("seed", "")),
                "trial_key": key,
                "project_commit": common["project_commit"],
            }
            plan.specs.append(
                {
                    **common,
                    "method": m,
                    "category": c.name,
                    "category_dir": str(Path(c.root).resolve()),
                    "config": config,
                    "overrides": overrides.get(m, {}),
                    "adapter": entry.adapter,
                    "adapter_dir": str(entry.search_dir) if entry.search_dir else None,
                    "upstream_commit": commit,
                    "checkout": str(entry.checkout_dir),
                    "vendor_clean": state.clean if (state and source == "upstream") else None,
                    "source": source,
                    "device": trial_device,
                    "profile": profile,
                    "key": key,
                    "tags": tags,
                    "run_name": name,
                }
            )
            plan.resources.append({"cpu": res.cpu, "gpu": res.gpu if trial_device != "cpu" else 0})
            plan.names.append(name)
    return plan


def weights_notice(plan: _Plan, profile: str) -> list[str]:
    """Start-up lines: where each method's backbone weights come from (random weights said
    loudly), and what an adapter says about this profile (e.g. DRAEM at the quick one)."""
    lines = []
    for m, tags in plan.weights.items():
        source = tags.get("weights_source", "none")
        if source != "none":
            what = f"{tags['weights_backbone']} from {source}"
            if source.startswith("random"):
                what += ": pretrained is false, these are NOT ImageNet features"
            lines.append(f"weights: {m}: {what}")
        if plan.notes.get(m):
            lines.append(f"note: {m} at the {profile} profile: {plan.notes[m]}")
    return lines


def _row(spec: Mapping[str, Any], run=None, error: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "method": spec["method"],
        "category": spec["category"],
        "profile": spec["profile"],
        "source": spec["source"],
        "seed": spec["config"].get("seed"),
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
    from orchestrator.data import load_dataset
    from orchestrator.preflight import has_images, validate_categories
    from orchestrator.preflight import overrides as preflight_overrides
    from orchestrator.profiles import choose_device, choose_profile
    from orchestrator.registry import load_registry
    from orchestrator.reports import console_summary
    from orchestrator.scheduling import ray_session, run_trials
    from orchestrator.scheduling.ray_session import ray_target
    from orchestrator.tracking import (
        get_experiment_id,
        project_commit,
        resolve_tracking_uri,
        start_parent_run,
    )
    from orchestrator.tracking.store import check_tracking_server
    from orchestrator.tracking.trials import check_store, store_identity

    out = out or sys.stdout
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    check_options(opts)
    registry_path = str(Path(opts.registry).resolve()) if opts.registry else None
    registry = load_registry(registry_path)
    methods = list(opts.methods or registry.available())
    if not methods:
        raise UserError("no methods available to survey (see `orchestrate methods`)")
    for m in methods:
        entry = registry.get(m)
        if not entry.available:
            raise UserError(f"method {m!r} is not available ({entry.import_error or entry.status})")
    overrides = parse_sets(opts.sets, methods)
    preflight_overrides(registry, methods, overrides)
    categories = load_dataset(opts.dataset, opts.dataset_root, opts.categories)
    has_images(categories)
    if opts.validate:
        validate_categories(categories, progress=sys.stderr.isatty())
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_server(uri)
    address = ray_target(opts.ray_address, opts.num_cpus)
    exp_id = get_experiment_id(uri, opts.experiment)
    store_id = store_identity(uri)

    interrupted: KeyboardInterrupt | None = None
    with ray_session(address, opts.num_cpus) as cluster:
        gpus = float(cluster.get("GPU", 0.0))
        profile, note = choose_profile(opts.profile, gpus)
        device = choose_device(opts.device, gpus)
        say(note)
        if gpus == 0:
            say(f"ray: {cluster.get('CPU', 0):g} CPU(s), no GPU -> trials run CPU-only")
        else:
            say(f"ray: {cluster.get('CPU', 0):g} CPU(s), {gpus:g} GPU(s)")
        commit = project_commit()
        parent_tags = {
            "mlflow.runName": f"survey {opts.dataset} ({profile})",
            "profile": profile,
            "dataset": opts.dataset,
            "methods": ",".join(methods),
            "categories": ",".join(c.name for c in categories),
            "seeds": ",".join(map(str, opts.seeds)) if opts.seeds else "",
            "project_commit": commit,
        }
        parent_id, reused = start_parent_run(uri, exp_id, parent_tags, resume=opts.resume)
        try:  # from here on, Ctrl-C ends the parent run KILLED
            common = {
                "tracking_uri": uri,
                "store_id": store_id,
                "experiment_id": exp_id,
                "parent_run_id": parent_id,
                "registry": registry_path,
                "project_commit": commit,
            }
            plan = _plan(
                opts, registry, methods, categories, overrides, profile, device, gpus, common
            )
            say(
                f"mlflow: {uri} experiment {opts.experiment!r} (id {exp_id}), "
                f"parent run {parent_id}"
            )
            todo = _todo(plan, uri, exp_id, parent_id, reused)
            skipped = len(plan.specs) - len(todo)
            if opts.resume:
                say(
                    f"resume: {skipped} of {len(plan.specs)} trials already finished, "
                    f"running {len(todo)}"
                    if reused
                    else "resume: no earlier survey in this experiment, starting a new one"
                )
            for line in weights_notice(plan, profile):
                say(line)
            seeds = f" x {len(opts.seeds)} seeds" if opts.seeds else ""
            say(
                f"survey: {len(methods)} method(s) x {len(categories)} categor(y/ies){seeds} = "
                f"{len(plan.specs)} trials: {', '.join(methods)}"
            )
            outcomes = run_trials(
                [plan.specs[i] for i in todo],
                survey_trial,
                [plan.resources[i] for i in todo],
                max_concurrent=opts.max_concurrent,
                retries=opts.retries,
                names=[plan.names[i] for i in todo],
                label="survey",
                trial_timeout=opts.trial_timeout,
            )
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (orchestrator.cli.Terminated)
            interrupted = exc
        except UserError as exc:  # e.g. missing weights found while planning: no RUNNING parent
            _parent_failed(uri, parent_id, store_id, f"stopped before any trial: {exc}")
            raise
    # Ray has stopped: no worker writes any more
    if interrupted is not None:
        _interrupted(uri, exp_id, parent_id, store_id)
        say(f"interrupted: survey run {parent_id} KILLED; `--resume` continues it")
        raise interrupted
    errors = {plan.specs[todo[j]]["key"]: o.error for j, o in enumerate(outcomes) if not o.ok}
    lost = next((o.error for o in outcomes if o.fatal == "store"), None)
    if lost is None:
        try:
            check_store(uri, store_id)
            rows = _rows_from_store(plan, uri, exp_id, parent_id, errors)
            failed = sum(r["status"] != "done" for r in rows)
            _finish_parent(uri, parent_id, rows, opts.output_dir, failed)
        except Exception as exc:
            lost = _store_problem(exc, uri)
    if lost is not None:
        where = _keep_locally(plan, todo, outcomes, opts.output_dir)
        _parent_failed(uri, parent_id, store_id, lost)
        raise Aborted(
            f"{lost.removeprefix('StoreLostError: ')}; stopped scheduling; the figures of "
            f"{sum(o.ok for o in outcomes)} finished trial(s) are in {where}"
        )
    say("")
    say(console_summary(rows))
    say(f"mlflow ui --backend-store-uri {uri}   # parent run {parent_id}")
    return SurveyResult(rows, parent_id, exp_id, uri, skipped, failed)


def _store_problem(exc: Exception, uri: str) -> str:
    """What a store error of the driver means (re-raised when it is something else)."""
    from orchestrator.tracking.trials import StoreLostError, _from_store, store_error

    if isinstance(exc, StoreLostError):
        return str(exc)
    gone = store_error(exc, uri)
    if gone is not None:
        return str(gone)
    if _from_store(exc) or type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return f"the MLflow store {uri} cannot be written ({first})"
    raise exc


def _todo(plan: _Plan, uri: str, exp_id: str, parent_id: str, reused: bool) -> list[int]:
    """Indices of the planned trials not finished yet (all of them for a new survey)."""
    from orchestrator.tracking import finished_trials

    done = finished_trials(uri, exp_id, parent_id) if reused else {}
    return [i for i, s in enumerate(plan.specs) if s["key"] not in done]


def _rows_from_store(plan: _Plan, uri, exp_id, parent_id, errors) -> list[dict[str, Any]]:
    """One row per planned trial from what the store holds; child runs left RUNNING by a
    worker that died end FAILED first."""
    from orchestrator.tracking import finished_trials
    from orchestrator.tracking.trials import close_open_children

    close_open_children(uri, exp_id, parent_id, "FAILED", "its worker died before the trial ended")
    done = finished_trials(uri, exp_id, parent_id)
    rows = []
    for s in plan.specs:
        run = done.get(s["key"])
        rows.append(_row(s, run, None if run else errors.get(s["key"], "no finished run")))
    return rows


def _interrupted(uri: str, exp_id: str, parent_id: str, store_id: str | None) -> None:
    """After Ctrl-C: running child runs and the parent end KILLED (as far as the store
    still takes writes)."""
    from mlflow import MlflowClient

    from orchestrator.tracking.trials import check_store, close_open_children

    try:
        check_store(uri, store_id)
        close_open_children(uri, exp_id, parent_id, "KILLED", "interrupted (Ctrl-C)")
        client = MlflowClient(tracking_uri=uri)
        client.set_tag(parent_id, "interrupted", "true")
        client.set_terminated(parent_id, "KILLED")
    except Exception as exc:  # noqa: BLE001 - the interruption is what gets reported
        print(f"could not mark the runs KILLED: {exc}", file=sys.stderr)


def _parent_failed(uri: str, parent_id: str, store_id: str | None, why: str) -> None:
    """The parent run ends FAILED with ``why`` when its store is back (a lock released), and
    is left alone when the store was deleted or replaced (writing would create a new one)."""
    from mlflow import MlflowClient

    from orchestrator.tracking.trials import check_store, close_open_children

    try:
        check_store(uri, store_id)
        client = MlflowClient(tracking_uri=uri)
        exp_id = client.get_run(parent_id).info.experiment_id
        close_open_children(uri, exp_id, parent_id, "FAILED", f"stopped: {why}"[:4900])
        client.set_tag(parent_id, "error", why[:4900])
        client.set_terminated(parent_id, "FAILED")
    except Exception:  # noqa: BLE001 - best effort: the local summary holds the figures
        pass


def _keep_locally(plan: _Plan, todo: list[int], outcomes, output_dir: Path | None) -> Path:
    """The summary of what the trials reported (their figures, from Ray, not the store)
    into ``output_dir`` or a new ``survey-unsaved-<time>`` folder here."""
    from orchestrator.reports import write_reports

    rows = []
    for j, o in enumerate(outcomes):
        spec = plan.specs[todo[j]]
        row = _row(spec, None, None if o.ok else o.error)
        if o.ok:
            row["status"] = "done"
            row.update({k: v for k, v in (o.result or {}).items() if k != "run_id"})
            row["run_id"] = (o.result or {}).get("run_id", "")
        rows.append(row)
    where = output_dir or Path(f"survey-unsaved-{time.strftime('%Y%m%d-%H%M%S')}")
    where.mkdir(parents=True, exist_ok=True)
    write_reports(rows, where)
    return where


def _finish_parent(uri: str, parent_id: str, rows, output_dir: Path | None, failed: int) -> None:
    import shutil

    from mlflow import MlflowClient

    from orchestrator.reports import write_reports

    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory(prefix="summary-") as tmp:
        write_reports(rows, Path(tmp))
        client.log_artifacts(parent_id, tmp, "summary")
        if output_dir is not None:
            shutil.copytree(tmp, output_dir, dirs_exist_ok=True)
    client.set_tag(parent_id, "failed_trials", str(failed))
    client.set_tag(parent_id, "trials", str(len(rows)))
    client.set_terminated(parent_id, "FINISHED")
