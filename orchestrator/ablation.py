"""The background-removal ablation (thesis 4.1): the survey's trials twice, on the images as
they are (arm ``original``) and with everything farther than a margin from the part blacked
out (arm ``masked``, :mod:`orchestrator.data.preprocess`), scheduled together under one MLflow
parent run (role ``ablation``). The parent holds the survey's summary tables (the masked
arm's rows labelled with its preprocessing), the side-by-side table (``ablation.md`` /
``ablation.csv``: original, masked, Δ per method, category and metric) and, per method and
category, a figure of the same test images in both arms (``ablation_<method>_<category>.png``).
``orchestrate report`` rebuilds the tables from the runs."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from orchestrator.survey import SurveyOptions, SurveyResult

KINDS = ("background",)
#: the arms, in the tables' order (orchestrator.reports.ablation.ARMS)
ABLATION_ARMS = ("original", "masked")


@dataclass
class AblationOptions(SurveyOptions):
    experiment: str = "ablation"
    kind: str = "background"


@dataclass
class AblationResult(SurveyResult):
    table: str = ""  # the side-by-side table (Markdown)


def masked_step(opts: AblationOptions):
    """The masked arm's step (the options' margin and part finder), checked."""
    from orchestrator.data.preprocess import Preprocess
    from orchestrator.errors import UserError

    if opts.kind not in KINDS:
        raise UserError(f"unknown ablation {opts.kind!r} (known: {', '.join(KINDS)})")
    if opts.preprocess != "none":
        raise UserError("an ablation runs both arms itself; it takes no --preprocess")
    step = Preprocess("mask-background", opts.preprocess_margin, opts.preprocess_object)
    step.check()
    return step


def run_ablation(opts: AblationOptions, out: TextIO | None = None) -> AblationResult:
    """Run (or, with ``--resume``, continue) the ablation; prints the side-by-side table.

    The same checks, parent-run handling and fault handling as the survey
    (:mod:`orchestrator.jobs`); both arms' trials go to one Ray session.
    """
    from orchestrator.data.preprocess import apply
    from orchestrator.jobs import ParentRun, guarded, open_cluster, prepare
    from orchestrator.jobs.parent import ui_lines
    from orchestrator.jobs.plan import weights_notice
    from orchestrator.survey import (
        _Plan,
        _plan,
        _rows_from_store,
        _rows_reported,
        check_options,
        survey_trial,
    )
    from orchestrator.tracking import project_commit

    out = out or sys.stdout
    say = lambda msg: print(msg, file=out, flush=True)  # noqa: E731
    check_options(opts)
    step = masked_step(opts)
    prep = prepare(opts, opts.methods)
    masked = apply(step, prep.categories, progress=sys.stderr.isatty())
    parent = ParentRun(prep.uri, prep.experiment_id, prep.store_id, "ablation")
    commit = project_commit()
    params = step.params()
    with guarded(parent, say), open_cluster(opts, prep.address, say) as cluster:
        profile = cluster.profile
        common = parent.begin(
            opts,
            prep,
            profile,
            commit,
            methods=",".join(prep.methods),
            ablation=opts.kind,
            arms=",".join(ABLATION_ARMS),
            **{
                "mlflow.runName": f"ablation {opts.kind} {opts.dataset} ({profile}, {step.label})",
                **params,
                "preprocess": f"none vs {step.step}",  # a parent of both arms
            },
        )
        arms = [
            _plan(opts, prep, cluster, common),
            _plan(opts, replace(prep, categories=masked), cluster, common),
        ]
        for name, arm_plan in zip(ABLATION_ARMS, arms, strict=True):
            for s in arm_plan.specs:
                s["run_name"] += f" [{name}]"
                s["tags"]["ablation_arm"] = name
        plan = _Plan(
            arms[0].specs + arms[1].specs, arms[0].resources + arms[1].resources, arms[0].setups
        )
        todo = parent.pending(plan.specs, opts, say)
        for line in weights_notice(plan.setups, profile):
            say(line)
        seeds = f" x {len(opts.seeds)} seeds" if opts.seeds else ""
        say(
            f"ablation {opts.kind}: 2 arms (original, {step.label}) x {len(prep.methods)} "
            f"method(s) x {len(prep.categories)} categor(y/ies){seeds} = {len(plan.specs)} "
            f"trials: {', '.join(prep.methods)}"
        )
        outcomes = cluster.run(
            [plan.specs[i] for i in todo],
            survey_trial,
            [plan.resources[i] for i in todo],
            opts,
            "ablation",
        )
    # Ray has stopped: no worker writes any more
    errors = {o.spec["key"]: o.error for o in outcomes if not o.ok}
    table: list[str] = []

    def extra(rows: list[dict[str, Any]], folder: Path) -> None:
        from orchestrator.reports.ablation import write_tables

        table.append(write_tables(rows, folder, step.label))
        write_figures(rows, folder, prep.uri, prep.categories, masked, say)

    rows = parent.conclude(
        outcomes,
        rows=lambda: _rows_from_store(plan, parent, errors),
        local_rows=lambda: _rows_reported(outcomes),
        output_dir=opts.output_dir,
        tags=lambda rows: {
            "failed_trials": sum(r["status"] != "done" for r in rows),
            "trials": len(rows),
        },
        extra=extra,
    )
    failed = sum(r["status"] != "done" for r in rows)
    say("")
    say(table[-1] if table else "")
    for line in ui_lines(prep.uri, prep.experiment_id, parent.run_id):
        say(line)
    return AblationResult(
        rows,
        parent.run_id,
        prep.experiment_id,
        prep.uri,
        failed,
        len(plan.specs) - len(todo),
        table[-1] if table else "",
    )


def write_figures(
    rows: Sequence[Mapping[str, Any]],
    folder: Path,
    uri: str,
    originals: Sequence,
    masked: Sequence,
    say,
) -> list[Path]:
    """Per (method, category) whose two arms finished: ``ablation_<method>_<category>.png``
    from both trials' ``overlay_maps.npz`` (the first seed of each). A trial whose maps
    cannot be read (a lost store) leaves its figure out, said in one line."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    from orchestrator.data.preprocess import kept_mask
    from orchestrator.reports.ablation import ablation_figure, arm
    from orchestrator.reports.trial import OVERLAY_MAPS, defect_type, read_overlay_maps

    runs: dict[tuple[str, str, str], str] = {}
    for r in sorted(rows, key=lambda r: str(r.get("seed"))):
        if r.get("status") == "done" and r.get("run_id"):
            runs.setdefault((str(r["method"]), str(r["category"]), arm(r)), str(r["run_id"]))
    cats = {"original": {c.name: c for c in originals}, "masked": {c.name: c for c in masked}}
    written = []
    client = MlflowClient(tracking_uri=uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a few small files
    for method, category in sorted({(m, c) for m, c, _ in runs}):
        ids = {a: runs.get((method, category, a)) for a in ABLATION_ARMS}
        if not all(ids.values()):
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="ablation-") as tmp:
                maps = {
                    a: read_overlay_maps(
                        Path(client.download_artifacts(ids[a], OVERLAY_MAPS, f"{tmp}/{a}"))
                    )
                    for a in ABLATION_ARMS
                }
        except Exception as exc:  # noqa: BLE001 - the tables are kept either way
            say(f"ablation figure {method}/{category} left out: {type(exc).__name__}: {exc}")
            continue
        tests = {a: {s.key: s for s in cats[a][category].test} for a in ABLATION_ARMS}
        keys = [k for k in maps["original"] if k in maps["masked"] and k in tests["masked"]]
        if not keys:
            continue
        cat = cats["original"][category]
        orig = [tests["original"][k] for k in keys]
        subtitles = [f"{s.label} {s.image_id} ({defect_type(s, cat.defects)})" for s in orig]
        fig = ablation_figure(
            f"{method} / {category}: original vs masked",
            orig,
            [tests["masked"][k] for k in keys],
            maps,
            [kept_mask(cats["masked"][category].root, tests["masked"][k]) for k in keys],
            subtitles,
        )
        path = folder / f"ablation_{method}_{category}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
