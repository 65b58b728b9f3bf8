"""The ``orchestrate ensemble`` job.

Two Ray Tune grids on the survey's machinery (orchestrator.scheduling, orchestrator.tracking):
first one member-fit trial per (member, category) (cached: a member is fitted once however
many combinations use it), then one trial per (combination, category) that loads the cached
members and compares, on the same test images, the members alone, the output-level ensembles
(mean, CAWPE) and the feature-level network. The parent MLflow run holds the comparison table.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from orchestrator.errors import UserError

COMBINATIONS = ("all", "pairs", "given")
CALIBRATORS = ("bounded_sigmoid", "platt")


@dataclass
class EnsembleOptions:
    members: list[str]
    combinations: str = "given"
    dataset: str = "synthetic"
    dataset_root: Path | None = None
    categories: list[str] | None = None
    fusion: str = "ift"
    components: int | None = None
    sets: list[str] = field(default_factory=list)  # "ensemble.key=v" or "member.key=v"
    source: str = "auto"
    tracking_uri: str | None = None
    experiment: str = "ensemble"
    ray_address: str | None = None
    num_cpus: int | None = None
    max_concurrent: int | None = None
    profile: str | None = None
    registry: Path | None = None
    retries: int = 0
    output_dir: Path | None = None
    in_process: bool = False  # run the trials one by one in this process, without Ray
    resume: bool = False  # continue the latest ensemble run, skipping finished trials
    seeds: list[int] | None = None  # one trial per seed (members and network alike)
    validate: bool = True  # run the dataset validator before Ray starts
    trial_timeout: float | None = None  # seconds a trial may run


@dataclass
class EnsembleResult:
    rows: list[dict[str, Any]]
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    fits: int  # members actually fitted (cache misses)
    failed: int

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def combinations(members: Sequence[str], mode: str) -> list[tuple[str, ...]]:
    """``given``: the members together; ``pairs``: every pair; ``all``: every subset of >= 2."""
    members = list(dict.fromkeys(members))
    if mode == "given":
        return [tuple(members)]
    if mode == "pairs":
        return list(itertools.combinations(members, 2))
    if mode == "all":
        return [c for r in range(2, len(members) + 1) for c in itertools.combinations(members, r)]
    raise UserError(f"--combinations must be one of {', '.join(COMBINATIONS)}, got {mode!r}")


def combo_name(combo: Sequence[str]) -> str:
    return "+".join(combo)


def _calibration(
    probs: Mapping[str, np.ndarray], y: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """ECE, Brier, NLL on the test images of each calibrator's probabilities (calibrators
    fitted on the validation set: ``Scores.calibrated``)."""
    from orchestrator.calibration import brier, ece, nll

    out = {}
    for kind, p in probs.items():
        out |= {
            f"{prefix}{kind}.ece": ece(p, y),
            f"{prefix}{kind}.brier": brier(p, y),
            f"{prefix}{kind}.nll": nll(p, y),
        }
    return out


@dataclass
class Approach:
    """One row of the comparison: a member, an output-level ensemble or the network."""

    name: str
    kind: str  # member | output | feature
    prefix: str  # of its metrics in the trial's MLflow run
    preds: Any  # adapters.base.Predictions of the test images
    probs: np.ndarray  # test image probabilities (calibrated on the validation set)


@dataclass
class Scores:
    approaches: list[Approach]
    net: Any  # the fitted FeatureEnsemble
    fit_s: float
    calibrated: dict[str, np.ndarray]  # calibrator kind -> the network's test probabilities


def score_ensemble(
    members: Sequence[Any],
    names: Sequence[str],
    config: Mapping[str, Any],
    train,
    validation,
    test,
    device: str = "cpu",
) -> Scores:
    """Score the test images with each member, the output-level ensembles and the feature
    network fitted on ``train``. Calibrators, CAWPE weights and map normalisation are fitted
    on ``validation`` (orchestrator.data.validation); no test label or mask is read here."""
    from adapters.common import seed_everything
    from orchestrator.calibration import fit_calibrator
    from orchestrator.ensemble.adapter import FeatureEnsemble
    from orchestrator.ensemble.baselines import output_ensembles

    cname = combo_name(names)
    yv = validation.is_anomalous
    out: list[Approach] = []
    member_preds, member_val = [], []
    for name, member in zip(names, members, strict=True):
        preds, val = member.predict(test), member.predict(validation)
        member_preds.append(preds)
        member_val.append(val)
        probs = fit_calibrator("bounded_sigmoid", val.image_scores, yv).predict(preds.image_scores)
        out.append(Approach(name, "member", f"member.{name}", preds, probs))
    for label, preds in output_ensembles(member_preds, member_val, yv).items():
        out.append(
            Approach(f"{label}[{cname}]", "output", f"output_{label}", preds, preds.image_scores)
        )
    seed_everything(int(config.get("seed", 0)))
    net = FeatureEnsemble({**config, "members": list(names)}, device=device)
    net.use_members(list(members))
    t0 = time.perf_counter()
    net.fit(train)
    fit_s = time.perf_counter() - t0
    preds, val = net.predict(test), net.predict(validation)
    calibrated = {
        kind: fit_calibrator(kind, val.image_scores, yv).predict(preds.image_scores)
        for kind in CALIBRATORS
    }
    out.append(
        Approach(f"feature[{cname}]", "feature", "feature", preds, calibrated["bounded_sigmoid"])
    )
    return Scores(out, net, fit_s, calibrated)


def ensemble_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One (combination, category) trial; returns ``{"run_id", "rows": [...]}``."""
    if spec.get("cache"):
        os.environ["ORCHESTRATOR_CACHE"] = spec["cache"]
    from orchestrator.calibration import brier, ece, nll
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_sets
    from orchestrator.ensemble.members import load_member
    from orchestrator.metrics import evaluate
    from orchestrator.survey import write_trial_artifacts
    from orchestrator.tracking.trials import open_trial_run

    combo = list(spec["combo"])
    cname = combo_name(combo)
    name = f"{cname}/{spec['category']}" + (
        f"/seed{spec['seed']}" if spec.get("seed") is not None else ""
    )
    with (
        open_trial_run(spec, name) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run.log_params({"ensemble": spec["config"], "members": cname})
        cat = load_category(Path(spec["category_dir"]))
        test = cat.split("test")
        y = test.is_anomalous
        members = [
            load_member(
                spec["member_keys"][m],
                spec["device"],
                spec["tracking_uri"],
                spec["experiment_id"],
                expected_adapter=spec["member_adapters"][m],
                adapter_dir=spec["member_adapter_dirs"][m],
            )
            for m in combo
        ]
        with tempfile.TemporaryDirectory(prefix="validation-") as val_dir:
            train, validation = protocol_sets(cat, val_dir)  # the members' training images too
            scores = score_ensemble(
                members, combo, spec["config"], train, validation, test, spec["device"]
            )
        metrics: dict[str, float] = {}
        rows: list[dict[str, Any]] = []
        for a in scores.approaches:
            m = dict(evaluate(test, a.preds))
            m |= {"ece": ece(a.probs, y), "brier": brier(a.probs, y), "nll": nll(a.probs, y)}
            metrics.update({f"{a.prefix}.{k}": v for k, v in m.items()})
            rows.append(
                {
                    "method": a.name,
                    "kind": a.kind,
                    "combination": cname,
                    "category": spec["category"],
                    "profile": spec["profile"],
                    "seed": spec["config"].get("seed"),
                    "status": "done",
                    **m,
                }
            )
        net, feature = scores.net, scores.approaches[-1]
        preds, probs = feature.preds, feature.probs
        feat = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("feature.")}
        metrics |= feat  # the trial's own (unprefixed) metrics: the feature-level network
        metrics |= _calibration(scores.calibrated, y, "calibration.")
        metrics |= {
            "fit_seconds": scores.fit_s,
            "components": float(sum(net.transform_.shares)),
            "final_loss": float(net.losses_[-1]) if net.losses_ else float("nan"),
        }
        out = Path(tmp)
        write_trial_artifacts(out, test, preds, probs, f"feature[{cname}]/{spec['category']}")
        _platt_figure(out, scores.calibrated["platt"], y, name)
        net.save(out / "model")  # the fitted network with its members: FeatureEnsemble.load
        (out / "shares.txt").write_text(
            " ".join(f"{m}:{k}" for m, k in zip(combo, net.transform_.shares, strict=False))
        )
        run.log_metrics(metrics)
        run.log_artifacts(out)
        return {"run_id": run.run_id, "rows": rows}


def _platt_figure(out: Path, probs: np.ndarray, y: np.ndarray, title: str) -> None:
    """Reliability diagram of the network's Platt probabilities (fitted on validation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrator.calibration import reliability_figure

    fig = reliability_figure(probs, y, title=f"{title} (Platt)")
    fig.savefig(out / "reliability_platt.png", dpi=100)
    plt.close(fig)


def _member_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    if spec.get("cache"):
        os.environ["ORCHESTRATOR_CACHE"] = spec["cache"]
    from orchestrator.ensemble.members import member_fit_trial

    return member_fit_trial(spec)


def _run_in_process(specs, trainable, *args, **kwargs):
    """``run_trials`` without Ray: the trials one after another here (debugging, tests)."""
    from orchestrator.scheduling import TrialOutcome

    out = []
    for i, spec in enumerate(specs):
        try:
            out.append(TrialOutcome(i, spec, "done", result=dict(trainable(spec))))
        except Exception as exc:  # noqa: BLE001 - reported like a failed Ray trial
            out.append(TrialOutcome(i, spec, "failed", error=f"{type(exc).__name__}: {exc}"))
    return out


def run_ensemble(opts: EnsembleOptions, out: TextIO | None = None) -> EnsembleResult:
    """Fit (or load) the members, run every (combination, category) trial, log the table."""
    from orchestrator import preflight
    from orchestrator.data import fingerprint, load_dataset
    from orchestrator.ensemble.adapter import FeatureEnsemble
    from orchestrator.ensemble.members import member_key
    from orchestrator.paths import cache_dir
    from orchestrator.profiles import choose_device, choose_profile
    from orchestrator.registry import load_registry
    from orchestrator.scheduling import ray_session, run_trials
    from orchestrator.scheduling.ray_session import ray_target
    from orchestrator.survey import parse_sets
    from orchestrator.tracking import (
        finished_trials,
        get_experiment_id,
        project_commit,
        resolve_tracking_uri,
        start_parent_run,
        trial_key,
    )
    from orchestrator.tracking.store import check_tracking_server
    from orchestrator.tracking.trials import store_identity
    from orchestrator.vendor import resolve_source

    out = out or sys.stdout
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    preflight.run_options(opts)
    members = list(dict.fromkeys(opts.members))
    if not members:
        raise UserError("--members needs at least one method")
    if opts.in_process and opts.trial_timeout is not None:
        raise UserError("--trial-timeout needs Ray (it does not apply with --in-process)")
    if opts.fusion not in ("ift", "global"):
        raise UserError(f"--fusion must be ift or global, got {opts.fusion!r}")
    combos = combinations(members, opts.combinations)
    if not combos or any(len(c) < 1 for c in combos):
        raise UserError(f"--combinations {opts.combinations}: no combination of {members}")
    registry_path = str(Path(opts.registry).resolve()) if opts.registry else None
    registry = load_registry(registry_path)
    for m in members:
        entry = registry.get(m)
        if not entry.available:
            raise UserError(f"method {m!r} is not available ({entry.import_error or entry.status})")
        if "features" not in entry.capabilities:
            raise UserError(f"method {m!r} does not provide features; it cannot be a member")
    overrides = parse_sets(opts.sets, [*members, "ensemble"])
    # the registry's ensemble settings (chosen on validation data: registry.yaml) over the
    # class defaults, then the command line's
    ens_config = dict(FeatureEnsemble.default_config) | registry.ensemble_params
    ens_config.pop("members")
    unknown = sorted(set(overrides.get("ensemble", {})) - set(ens_config))
    if unknown:
        raise UserError(
            f"ensemble: unknown parameter(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(ens_config))})"
        )
    ens_config |= {"fusion": opts.fusion, "components": opts.components}
    ens_config |= overrides.get("ensemble", {})
    preflight.overrides(registry, members, overrides)
    categories = load_dataset(opts.dataset, opts.dataset_root, opts.categories)
    preflight.has_images(categories)
    if opts.validate:
        preflight.validate_categories(categories, progress=sys.stderr.isatty())
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_server(uri)
    address = None if opts.in_process else ray_target(opts.ray_address, opts.num_cpus)
    cache = str(cache_dir())

    if opts.in_process:
        session, run_trials = contextlib.nullcontext({"CPU": 1.0}), _run_in_process
    else:
        session = ray_session(address, opts.num_cpus)
    with session as cluster:
        gpus = float(cluster.get("GPU", 0.0))
        profile, note = choose_profile(opts.profile, gpus)
        device = choose_device("auto", gpus)
        say(note)
        commit = project_commit()
        exp_id = get_experiment_id(uri, opts.experiment)
        parent_id, reused = start_parent_run(
            uri,
            exp_id,
            {
                "mlflow.runName": f"ensemble {opts.dataset} ({profile})",
                "profile": profile,
                "dataset": opts.dataset,
                "members": ",".join(members),
                "seeds": ",".join(map(str, opts.seeds)) if opts.seeds else "",
                "combinations": opts.combinations,
                "fusion": opts.fusion,
                "categories": ",".join(c.name for c in categories),
                "project_commit": commit,
            },
            kind="ensemble",
            resume=opts.resume,
        )
        common = {
            "tracking_uri": uri,
            "store_id": store_identity(uri),
            "experiment_id": exp_id,
            "parent_run_id": parent_id,
            "registry": registry_path,
            "cache": cache,
            "device": device,
            "profile": profile,
        }
        fps = {c.name: fingerprint(c) for c in categories}
        m_specs, m_res, m_names, keys = [], [], [], {}
        seeds: list[int | None] = list(opts.seeds) if opts.seeds else [None]
        for m in members:
            entry = registry.get(m)
            source, state = resolve_source(entry, entry.adapter_class(), opts.source)
            up = (state.head if state else entry.commit) if source == "upstream" else ""
            base = entry.resolved_config(profile, overrides.get(m))
            entry.adapter_class().weights_tags(base, source, verify=True)  # stop here if bad
            for c, seed in itertools.product(categories, seeds):
                config = dict(base) if seed is None else {**base, "seed": int(seed)}
                key = member_key(m, c.name, config, fps[c.name], source, up)
                keys[(m, c.name, seed)] = key
                m_specs.append(
                    {
                        **common,
                        "method": m,
                        "category": c.name,
                        "key": key,
                        "category_dir": str(Path(c.root).resolve()),
                        "config": config,
                        "adapter": entry.adapter,
                        "adapter_dir": str(entry.search_dir) if entry.search_dir else None,
                        "source": source,
                        "upstream_commit": up,
                        "checkout": str(entry.checkout_dir),
                        "device": "cpu" if not gpus else device,
                        "seed": seed,
                        "tags": {
                            "method": m,
                            "category": c.name,
                            "profile": profile,
                            "seed": str(config.get("seed", "")),
                            "dataset_fingerprint": fps[c.name],
                            "project_commit": commit,
                        },
                    }
                )
                m_res.append(
                    {"cpu": entry.resources.cpu, "gpu": entry.resources.gpu if gpus else 0}
                )
                m_names.append(f"fit {m}/{c.name}" + (f"/seed{seed}" if seed is not None else ""))
        say(f"mlflow: {uri} experiment {opts.experiment!r}, parent run {parent_id}")
        say(f"members: {len(m_specs)} member fit(s) (cached ones are loaded, not refitted)")
        m_out = run_trials(
            m_specs,
            _member_trial,
            m_res,
            max_concurrent=opts.max_concurrent,
            retries=opts.retries,
            names=m_names,
            label="members",
            trial_timeout=opts.trial_timeout,
        )
        fits = sum(bool(o.ok and o.result and o.result.get("fitted")) for o in m_out)
        failed_members = {
            (o.spec["method"], o.spec["category"], o.spec["seed"]): o.error
            for o in m_out
            if not o.ok
        }
        specs, names = [], []
        done = finished_trials(uri, exp_id, parent_id) if reused else {}
        resumed: list = []
        for combo in combos:
            for c, seed in itertools.product(categories, seeds):
                if any((m, c.name, seed) in failed_members for m in combo):
                    continue
                member_keys = {m: keys[(m, c.name, seed)] for m in combo}
                config = dict(ens_config) if seed is None else {**ens_config, "seed": int(seed)}
                key = trial_key(
                    combo=list(combo), category=c.name, config=config, members=member_keys
                )
                if key in done:
                    resumed.append(done[key])
                    continue
                specs.append(
                    {
                        **common,
                        "combo": list(combo),
                        "category": c.name,
                        "category_dir": str(Path(c.root).resolve()),
                        "member_keys": member_keys,
                        # a member artifact is accepted only for the registry's own class
                        "member_adapters": {m: registry.get(m).adapter for m in combo},
                        "member_adapter_dirs": {
                            m: str(registry.get(m).search_dir)
                            if registry.get(m).search_dir
                            else None
                            for m in combo
                        },
                        "config": config,
                        "seed": seed,
                        "tags": {
                            "members": combo_name(combo),
                            "category": c.name,
                            "profile": profile,
                            "seed": str(config.get("seed", "")),
                            "fusion": opts.fusion,
                            "dataset_fingerprint": fps[c.name],
                            "orchestrator.role": "ensemble_trial",
                            "trial_key": key,
                            "project_commit": commit,
                        },
                    }
                )
                names.append(
                    f"{combo_name(combo)}/{c.name}" + (f"/seed{seed}" if seed is not None else "")
                )
        if opts.resume:
            say(
                f"resume: {len(resumed)} trial(s) already finished, running {len(specs)}"
                if reused
                else "resume: no earlier ensemble run in this experiment, starting a new one"
            )
        n_seeds = f" x {len(seeds)} seeds" if opts.seeds else ""
        say(
            f"ensemble: {len(combos)} combination(s) x {len(categories)} categor(y/ies)"
            f"{n_seeds} = {len(specs) + len(resumed)} trials"
        )
        e_out = run_trials(
            specs,
            ensemble_trial,
            {"cpu": 1.0},
            max_concurrent=opts.max_concurrent,
            retries=opts.retries,
            names=names,
            label="ensemble",
            trial_timeout=opts.trial_timeout,
        )
    rows = comparison_rows([_Finished(rows_from_run(r, profile)) for r in resumed] + list(e_out))
    failed = len(failed_members) + sum(not o.ok for o in e_out)
    for (m, cat, seed), err in failed_members.items():
        rows.append(
            {
                "method": m,
                "kind": "member",
                "category": cat,
                "profile": profile,
                "seed": seed,
                "status": "failed",
                "error": err,
            }
        )
    _finish_parent(uri, parent_id, rows, opts.output_dir, failed, fits)
    say("")
    say(comparison_markdown(rows))
    say(f"member fits: {fits} (of {len(m_specs)} member/category pairs); failed trials: {failed}")
    return EnsembleResult(rows, parent_id, exp_id, uri, fits, failed)


@dataclass
class _Finished:
    """A trial finished by an earlier run, shaped like a successful TrialOutcome."""

    rows: list[dict[str, Any]]
    ok: bool = True

    @property
    def result(self) -> dict[str, Any]:
        return {"rows": self.rows}


def rows_from_run(run, profile: str) -> list[dict[str, Any]]:
    """The comparison rows of a finished ensemble trial, rebuilt from its MLflow metrics."""
    combo = run.data.tags["members"]
    category = run.data.tags["category"]
    seed_tag = run.data.tags.get("seed", "")
    seed = int(seed_tag) if seed_tag.isdigit() else None
    labels = {"feature": (f"feature[{combo}]", "feature")}
    labels |= {f"output_{k}": (f"{k}[{combo}]", "output") for k in ("mean", "cawpe")}
    labels |= {f"member.{m}": (m, "member") for m in combo.split("+")}
    rows = []
    for prefix, (approach, kind) in labels.items():
        metrics = {
            k[len(prefix) + 1 :]: v
            for k, v in run.data.metrics.items()
            if k.startswith(prefix + ".")
        }
        if metrics:
            rows.append(
                {
                    "method": approach,
                    "kind": kind,
                    "combination": combo,
                    "category": category,
                    "profile": profile,
                    "seed": seed,
                    "status": "done",
                    **metrics,
                }
            )
    return rows


def comparison_rows(outcomes) -> list[dict[str, Any]]:
    """One row per (approach, category), a member's row once however many combinations."""
    rows, seen = [], set()
    for o in outcomes:
        if not o.ok:
            rows.append(
                {
                    "method": combo_name(o.spec["combo"]),
                    "kind": "feature",
                    "category": o.spec["category"],
                    "profile": o.spec["profile"],
                    "seed": o.spec.get("seed"),
                    "status": "failed",
                    "error": o.error,
                }
            )
            continue
        for r in o.result["rows"]:
            k = (r["method"], r["category"], r.get("seed"))
            if k not in seen:
                seen.add(k)
                rows.append(r)
    return rows


def comparison_markdown(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] = (
        "image_auroc_mean",
        "image_auroc",
        "pixel_auroc",
        "au_spro_0.05",
        "ece",
    ),
) -> str:
    """Members vs output-level vs feature-level, one line per (approach, category); over
    several seeds a cell is ``mean ± std (n=k)``."""
    present = [m for m in metrics if any(m in r for r in rows)]
    head = "| approach | kind | category | " + " | ".join(present) + " |"
    lines = [head, "|" + "---|" * (3 + len(present))]
    order = {"member": 0, "output": 1, "feature": 2}
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["category"], r.get("kind", ""), r["method"]), []).append(r)
    for cat, kind, method in sorted(groups, key=lambda k: (k[0], order.get(k[1], 3), k[2])):
        group = groups[(cat, kind, method)]
        done = [r for r in group if r.get("status") == "done"]
        several = len({r.get("seed") for r in group}) > 1
        cells = []
        for m in present:
            vals = [float(r[m]) for r in done if r.get(m) is not None]
            if not done:
                cells.append("FAILED")
            elif not vals:
                cells.append("")
            elif several:
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
                spread = f" ± {sd:.3f}" if len(vals) > 1 else ""
                cells.append(f"{np.mean(vals):.3f}{spread} (n={len(vals)})")
            else:
                cells.append(f"{vals[0]:.3f}")
        lines.append(f"| {method} | {kind} | {cat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _finish_parent(
    uri: str, parent_id: str, rows, output_dir: Path | None, failed: int, fits: int
) -> None:
    import shutil

    from mlflow import MlflowClient

    from orchestrator.reports import write_reports

    client = MlflowClient(tracking_uri=uri)
    with tempfile.TemporaryDirectory(prefix="comparison-") as tmp:
        write_reports(rows, Path(tmp))
        (Path(tmp) / "comparison.md").write_text(comparison_markdown(rows) + "\n")
        client.log_artifacts(parent_id, tmp, "summary")
        if output_dir is not None:
            shutil.copytree(tmp, output_dir, dirs_exist_ok=True)
    client.set_tag(parent_id, "failed_trials", str(failed))
    client.set_tag(parent_id, "member_fits", str(fits))
    client.set_terminated(parent_id, "FINISHED")
