"""Everything a job checks before Ray starts: one UserError (exit 2) for any deterministic
mistake, never a failed trial."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.jobs.options import JobOptions


@dataclass
class Prepared:
    """What the checks found: the job's inputs, resolved."""

    registry: Any  # orchestrator.registry.Registry
    registry_path: str | None  # the user registry (absolute), for the workers
    methods: list[str]
    overrides: dict[str, dict[str, Any]]  # --set, per method (and "ensemble")
    categories: list  # orchestrator.data.types.Category
    uri: str  # the MLflow tracking URI
    address: str | None  # the Ray cluster to join (None: a local one)
    experiment_id: str
    store_id: str | None  # the local store's identity (orchestrator.tracking.trials)
    #: the step applied to ``categories`` (orchestrator.data.preprocess; none by default)
    preprocess: Any = None


def prepare(
    opts: JobOptions,
    methods: Sequence[str] | None,
    *,
    need: str | None = None,
    set_targets: Sequence[str] = (),
) -> Prepared:
    """Check ``opts`` and resolve the job's inputs.

    ``methods``: the methods the job runs (None: every available default method); ``need``:
    a capability each must have (the ensemble's members need ``features``); ``set_targets``:
    names besides the methods that ``--set`` may address (``ensemble``).
    """
    from orchestrator import preflight
    from orchestrator.data import load_dataset
    from orchestrator.data import preprocess as pre
    from orchestrator.registry import load_registry
    from orchestrator.scheduling.ray_session import ray_target
    from orchestrator.tracking import get_experiment_id, resolve_tracking_uri
    from orchestrator.tracking.store import check_tracking_server
    from orchestrator.tracking.trials import store_identity

    preflight.run_options(opts)
    step = pre.from_options(opts)
    if opts.in_process and opts.trial_timeout is not None:
        raise UserError("--trial-timeout needs Ray (it does not apply with --in-process)")
    registry_path = str(Path(opts.registry).resolve()) if opts.registry else None
    registry = load_registry(registry_path)
    names = list(dict.fromkeys(methods if methods is not None else registry.available()))
    if not names:
        raise UserError("no methods available (see `orchestrate methods`)")
    for m in names:
        entry = registry.get(m)
        if not entry.available:
            raise UserError(f"method {m!r} is not available ({entry.import_error or entry.status})")
        if need and need not in entry.capabilities:
            raise UserError(f"method {m!r} does not provide {need}; it cannot be used here")
    overrides = preflight.parse_sets(opts.sets, [*names, *set_targets])
    preflight.overrides(registry, names, overrides)
    categories = load_dataset(opts.dataset, opts.dataset_root, opts.categories)
    preflight.has_images(categories)
    if opts.validate:
        preflight.validate_categories(categories, progress=sys.stderr.isatty())
    pre.check_inputs(step, categories)  # roi files: before any store is touched
    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking_server(uri)
    address = None if opts.in_process else ray_target(opts.ray_address, opts.num_cpus)
    exp_id = get_experiment_id(uri, opts.experiment, artifact_root=opts.artifact_root)
    # the trials read the preprocessed copies (cached; the originals were validated above)
    categories = pre.apply(step, categories, progress=sys.stderr.isatty())
    return Prepared(
        registry,
        registry_path,
        names,
        overrides,
        categories,
        uri,
        address,
        exp_id,
        store_identity(uri),
        step,
    )
