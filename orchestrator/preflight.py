"""Checks the trial commands (survey, ensemble) run in the driver before Ray starts: every
deterministic mistake is one UserError (exit 2) before any work, never a failed trial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import UserError

#: problems listed in full before "... and N more"
MAX_LISTED = 20


def named(option: str, names: Sequence[str] | None) -> None:
    """``--methods ,`` names nothing: an error, not "every default method"."""
    if names is not None and not names:
        raise UserError(f"{option} names nothing (give comma-separated names, or leave it out)")


def at_least(option: str, value: float | None, low: float, integer: bool = True) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < low:
        kind = "an integer" if integer else "a number"
        raise UserError(f"{option} must be {kind} >= {low:g}, got {value}")


def trial_timeout(value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise UserError(f"--trial-timeout must be a number of seconds > 0, got {value}")


def output_dir(path: Path | None) -> None:
    """The folder reports go to: made now, so a file in the way is found before any trial."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output-dir {path}: cannot create it ({exc.strerror or exc})") from exc


def has_images(categories) -> None:
    """Every category has training and test images (checked even with ``--no-validate``:
    an empty split cannot give a metric)."""
    for cat in categories:
        for split, n in (("train", len(cat.train)), ("test", len(cat.test))):
            if n == 0:
                raise UserError(f"{cat.root}: no {split} images (expected {split}/... folders)")


def run_options(opts) -> None:
    """The options survey and ensemble share (their ``SurveyOptions`` / ``EnsembleOptions``)."""
    at_least("--retries", opts.retries, 0)
    at_least("--max-concurrent", opts.max_concurrent, 1)
    at_least("--num-cpus", opts.num_cpus, 1)
    at_least("--curve-points", getattr(opts, "curve_points", 0), 0)
    trial_timeout(opts.trial_timeout)
    named("--categories", opts.categories)
    output_dir(opts.output_dir)


def parse_sets(sets: Sequence[str], targets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set`` values: ``["patchcore.coreset_percentage=0.01", ...]`` ->
    ``{"patchcore": {...}}`` (values parsed as YAML: numbers, booleans, lists); ``targets``:
    the names a ``--set`` may address (the job's methods, ``ensemble``)."""
    out: dict[str, dict[str, Any]] = {}
    for item in sets:
        name, eq, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not eq or not dot or not method or not key:
            raise UserError(f"--set expects method.key=value, got {item!r}")
        if method not in targets:
            raise UserError(f"--set {item}: method {method!r} is not in this run")
        try:
            out.setdefault(method, {})[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--set {item}: cannot parse value ({exc})") from exc
    return out


def overrides(registry, methods: Sequence[str], sets: dict[str, dict]) -> None:
    """Names and types of every ``--set`` value. Profiles cannot add parameters and the types
    allowed span params and every profile, so one resolution checks them for any profile."""
    for m in methods:
        registry.get(m).resolved_config("paper", sets.get(m))


def validate_categories(categories, progress: bool = False) -> None:
    """Run the dataset validator (``orchestrate datasets check``) on every category; any
    problem (a mask of the wrong size, a missing mask folder or defects_config.json, a test
    image of another size, ...) is one UserError naming the files."""
    from orchestrator.data.validate import validate

    problems = []
    for cat in categories:
        problems += validate(cat.root, progress=progress)
    if not problems:
        return
    listed = "\n  ".join(str(p) for p in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise UserError(
        f"the dataset has {len(problems)} problem(s); metrics on it would be wrong:\n  "
        f"{listed}{more}\n(see `orchestrate datasets check DIR`; --no-validate skips this "
        "check for data known to be good)"
    )
