"""The ``orchestrate ensemble`` job.

Two Ray Tune grids on the survey's machinery (orchestrator.scheduling, orchestrator.tracking):
first one member-fit trial per (member, category) (cached: a member is fitted once however
many combinations use it), then one trial per (combination, category) that loads the cached
members and compares, on the same test images, the members alone, the output-level ensembles
(mean, CAWPE) and the feature-level network. The parent MLflow run holds the comparison table.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orchestrator.ensemble.comparison import (
    Finished,
    combo_name,
    comparison_markdown,
    comparison_rows,
    member_rows,
    rows_from_run,
    write_comparison,
)
from orchestrator.errors import UserError
from orchestrator.jobs.options import JobOptions, JobResult

COMBINATIONS = ("all", "pairs", "given")


@dataclass
class EnsembleOptions(JobOptions):
    members: list[str] = field(default_factory=list)
    combinations: str = "given"
    fusion: str = "ift"
    components: int | None = None
    experiment: str = "ensemble"
    retries: int = 0


@dataclass
class EnsembleResult(JobResult):
    fits: int = 0  # members actually fitted (cache misses)


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


def ensemble_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One (combination, category) trial; returns ``{"run_id", "rows": [...]}``."""
    from orchestrator.calibration import brier, ece, nll
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_sets
    from orchestrator.ensemble.members import load_member
    from orchestrator.ensemble.scoring import calibration_metrics, score_ensemble
    from orchestrator.jobs.plan import detector_info, enter_worker, trial_params
    from orchestrator.metrics import evaluate
    from orchestrator.models import Detector
    from orchestrator.models.pyfunc import save_detector_model
    from orchestrator.reports.trial import (
        decision_metrics,
        reliability_png,
        write_trial_artifacts,
    )
    from orchestrator.tracking.curves import trial_monitor
    from orchestrator.tracking.trials import open_trial_run

    enter_worker(spec)
    combo = list(spec["combo"])
    cname = combo_name(combo)
    name = spec["run_name"]
    with (
        open_trial_run(spec, name) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run.log_params(
            trial_params({**spec, "method": "feature_ensemble"}, {"ensemble": spec["config"]})
            | {"members": cname}
        )
        run.log_category(spec)
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
        train, validation = protocol_sets(cat)  # the members' training images too (cached)
        points = int(spec.get("curve_points", 4))
        scores = score_ensemble(
            members,
            combo,
            spec["config"],
            train,
            validation,
            test,
            spec["device"],
            curves=lambda net: trial_monitor(run, net, validation, points),
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
        metrics |= calibration_metrics(scores.calibrated, y, "calibration.")
        metrics |= decision_metrics(preds.image_scores, y, scores.thresholds)
        metrics |= {
            "fit_seconds": scores.fit_s,
            "components": float(sum(net.transform_.shares)),
            "final_loss": float(net.losses_[-1]) if net.losses_ else float("nan"),
        }
        out = Path(tmp)
        title = f"feature[{cname}]/{spec['category']}"
        write_trial_artifacts(out, test, preds, probs, title, scores.thresholds)
        # the network's Platt probabilities (fitted on validation)
        reliability_png(
            out / "reliability_platt.png", scores.calibrated["platt"], y, f"{name} (Platt)"
        )
        # the fitted network with its members, calibration and thresholds: an MLflow Model
        info = detector_info({**spec, "method": f"feature[{cname}]", "source": "native"})
        save_detector_model(
            out / "model", Detector(net, scores.calibrator, scores.thresholds, info)
        )
        (out / "shares.txt").write_text(
            " ".join(f"{m}:{k}" for m, k in zip(combo, net.transform_.shares, strict=False))
        )
        run.log_metrics(metrics)
        run.log_artifacts(out)
        return {"run_id": run.run_id, "rows": rows}


def _member_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    from orchestrator.ensemble.members import member_fit_trial
    from orchestrator.jobs.plan import enter_worker

    enter_worker(spec)
    return member_fit_trial(spec)


def check_options(opts: EnsembleOptions) -> list[tuple[str, ...]]:
    """The ensemble's own options; the combinations they give."""
    from orchestrator import preflight

    preflight.run_options(opts)
    if not opts.members:
        raise UserError("--members needs at least one method")
    if opts.fusion not in ("ift", "global"):
        raise UserError(f"--fusion must be ift or global, got {opts.fusion!r}")
    if opts.components is not None and opts.components < 1:
        raise UserError("--components must be >= 1")
    combos = combinations(opts.members, opts.combinations)
    if not combos:
        raise UserError(f"--combinations {opts.combinations}: no combination of {opts.members}")
    return combos


def network_config(opts: EnsembleOptions, prep) -> dict[str, Any]:
    """The feature network's settings: the class defaults, the registry's ``ensemble``
    params (chosen on validation data: registry.yaml), the options, then ``--set ensemble.*``."""
    from orchestrator.ensemble.adapter import FeatureEnsemble

    config = dict(FeatureEnsemble.default_config) | prep.registry.ensemble_params
    config.pop("members")
    sets = prep.overrides.get("ensemble", {})
    unknown = sorted(set(sets) - set(config))
    if unknown:
        raise UserError(
            f"ensemble: unknown parameter(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(config))})"
        )
    return config | {"fusion": opts.fusion, "components": opts.components} | sets


@dataclass
class _Members:
    """The member-fit grid: one spec per (member, category, seed), and their keys."""

    specs: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, float]] = field(default_factory=list)
    keys: dict[tuple[str, str, int | None], str] = field(default_factory=dict)
    wants: dict[str, dict[str, float]] = field(default_factory=dict)  # member -> resources
    setups: list = field(default_factory=list)  # orchestrator.jobs.MethodSetup per member


def _plan_members(opts: EnsembleOptions, prep, cluster, common, fps) -> _Members:
    from orchestrator.ensemble.members import member_key
    from orchestrator.jobs import method_spec, setup_method
    from orchestrator.jobs.plan import trial_name, trial_resources

    plan = _Members()
    for m in prep.methods:
        ms = setup_method(
            prep.registry, m, opts.source, cluster.profile, prep.overrides.get(m), opts.allow_dirty
        )
        plan.setups.append(ms)
        device = cluster.trial_device(ms.resources.gpu > 0)
        plan.wants[m] = trial_resources(ms.resources, device)
        for c, seed in itertools.product(prep.categories, opts.seeds or [None]):
            name = trial_name(f"fit {m}", c.name, seed)
            spec = method_spec(ms, c, fps[c.name], seed, common, device, name)
            spec["key"] = member_key(
                m, c.name, spec["config"], fps[c.name], ms.source, ms.commit, spec["preprocess"]
            )
            plan.keys[(m, c.name, seed)] = spec["key"]
            plan.specs.append(spec)
            plan.resources.append(plan.wants[m])
    return plan


def _combined(wants: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """An ensemble trial holds its members at once: the most any of them asks for."""
    return {k: max(float(w.get(k, 0.0)) for w in wants) for k in ("cpu", "gpu", "memory_gb")}


@dataclass
class _Trials:
    specs: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, float]] = field(default_factory=list)
    resumed: list = field(default_factory=list)  # finished runs of a resumed parent


def _plan_trials(
    opts, prep, cluster, common, fps, combos, config, members: _Members, failed, done
) -> _Trials:
    from orchestrator.data.preprocess import record
    from orchestrator.jobs.plan import trial_name
    from orchestrator.tracking import trial_key

    plan = _Trials()
    for combo in combos:
        wants = _combined([members.wants[m] for m in combo])
        device = cluster.trial_device(wants["gpu"] > 0)
        for c, seed in itertools.product(prep.categories, opts.seeds or [None]):
            if any((m, c.name, seed) in failed for m in combo):
                continue
            member_keys = {m: members.keys[(m, c.name, seed)] for m in combo}
            cfg = dict(config) if seed is None else {**config, "seed": int(seed)}
            key = trial_key(combo=list(combo), category=c.name, config=cfg, members=member_keys)
            if key in done:
                plan.resumed.append(done[key])
                continue
            entries = {m: prep.registry.get(m) for m in combo}
            preprocess = record(c.root)  # already in the member keys, so in ``key``
            plan.specs.append(
                {
                    **common,
                    "combo": list(combo),
                    "category": c.name,
                    "category_dir": str(Path(c.root).resolve()),
                    "member_keys": member_keys,
                    # a member artifact is accepted only for the registry's own class
                    "member_adapters": {m: e.adapter for m, e in entries.items()},
                    "member_adapter_dirs": {
                        m: str(e.search_dir) if e.search_dir else None for m, e in entries.items()
                    },
                    "config": cfg,
                    "seed": seed,
                    "device": device,
                    "run_name": trial_name(combo_name(combo), c.name, seed),
                    "preprocess": preprocess,
                    "tags": {
                        **preprocess,
                        "members": combo_name(combo),
                        "category": c.name,
                        "dataset": opts.dataset,
                        "profile": cluster.profile,
                        "seed": str(cfg.get("seed", "")),
                        "fusion": opts.fusion,
                        "device": device,
                        "dataset_fingerprint": fps[c.name],
                        "orchestrator.role": "ensemble_trial",
                        "trial_key": key,
                        "project_commit": common["project_commit"],
                    },
                }
            )
            plan.resources.append(wants)
    return plan


def run_ensemble(opts: EnsembleOptions, out: TextIO | None = None) -> EnsembleResult:
    """Fit (or load) the members, run every (combination, category) trial, log the table.

    The same checks, parent-run handling and fault handling as the survey
    (:mod:`orchestrator.jobs`): Ctrl-C ends the parent KILLED, a lost store stops the job
    with the finished trials' rows kept locally.
    """
    from orchestrator.data import fingerprint
    from orchestrator.jobs import ParentRun, guarded, open_cluster, prepare
    from orchestrator.jobs.parent import ui_lines
    from orchestrator.jobs.plan import weights_notice
    from orchestrator.tracking import project_commit

    out = out or sys.stdout
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    combos = check_options(opts)
    prep = prepare(opts, opts.members, need="features", set_targets=("ensemble",))
    config = network_config(opts, prep)
    parent = ParentRun(prep.uri, prep.experiment_id, prep.store_id, "ensemble")
    commit = project_commit()
    fps = {c.name: fingerprint(c) for c in prep.categories}
    e_out: list = []
    trials = _Trials()
    with guarded(parent, say), open_cluster(opts, prep.address, say) as cluster:
        profile = cluster.profile
        common = parent.begin(
            opts,
            prep,
            profile,
            commit,
            members=",".join(prep.methods),
            combinations=opts.combinations,
            fusion=opts.fusion,
        )
        members = _plan_members(opts, prep, cluster, common, fps)
        say(f"mlflow: {prep.uri} experiment {opts.experiment!r}, parent run {parent.run_id}")
        for line in weights_notice(members.setups, profile):
            say(line)
        say(f"members: {len(members.specs)} member fit(s) (cached ones are loaded, not refitted)")
        m_out = cluster.run(members.specs, _member_trial, members.resources, opts, "members")
        failed = {(o.spec["method"], o.spec["category"], o.spec["seed"]) for o in m_out if not o.ok}
        if not any(o.fatal == "store" for o in m_out):
            trials = _plan_trials(
                opts,
                prep,
                cluster,
                common,
                fps,
                combos,
                config,
                members,
                failed,
                parent.finished(),
            )
            if opts.resume:
                say(
                    f"resume: {len(trials.resumed)} trial(s) already finished, "
                    f"running {len(trials.specs)}"
                    if parent.reused
                    else "resume: no earlier ensemble run in this experiment, starting a new one"
                )
            n_seeds = f" x {len(opts.seeds)} seeds" if opts.seeds else ""
            say(
                f"ensemble: {len(combos)} combination(s) x {len(prep.categories)} "
                f"categor(y/ies){n_seeds} = {len(trials.specs) + len(trials.resumed)} trials"
            )
            e_out = cluster.run(trials.specs, ensemble_trial, trials.resources, opts, "ensemble")
    # Ray has stopped: no worker writes any more
    fits = sum(bool(o.ok and o.result and o.result.get("fitted")) for o in m_out)

    def reported() -> list[dict[str, Any]]:
        return comparison_rows(list(e_out)) + member_rows(m_out, profile)

    def from_store() -> list[dict[str, Any]]:
        earlier = [Finished(rows_from_run(r, profile)) for r in trials.resumed]
        return comparison_rows(earlier + list(e_out)) + member_rows(m_out, profile)

    rows = parent.conclude(
        [*m_out, *e_out],
        rows=from_store,
        local_rows=reported,
        output_dir=opts.output_dir,
        tags=lambda rows: {
            "failed_trials": sum(r.get("status") != "done" for r in rows),
            "member_fits": fits,
        },
        extra=write_comparison,
    )
    failed_n = sum(r.get("status") != "done" for r in rows)
    say("")
    say(comparison_markdown(rows))
    say(
        f"member fits: {fits} (of {len(members.specs)} member/category pairs); "
        f"failed trials: {failed_n}"
    )
    for line in ui_lines(prep.uri, prep.experiment_id, parent.run_id):
        say(line)
    return EnsembleResult(rows, parent.run_id, prep.experiment_id, prep.uri, failed_n, fits)
