"""One method as a job runs it, and the trial spec a Ray worker gets for it.

The driver resolves everything once (:func:`setup_method`: source, commit, config for the
profile with ``--set``, backbone weights); :func:`method_spec` turns it into a plain-data
spec per (category, seed), with the tags every trial of every job carries; in the worker,
:func:`adapter_from_spec` rebuilds the adapter from the spec alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.base import Adapter, Resources


@dataclass
class MethodSetup:
    name: str
    entry: Any  # orchestrator.registry.MethodEntry
    source: str  # upstream | native
    commit: str  # the checkout's HEAD for upstream, "" for native
    vendor_clean: bool | None  # upstream: is the checkout unmodified? (None: native)
    config: dict[str, Any]  # the profile's params with the --set overrides
    weights: dict[str, str]  # where its backbone weights come from (Adapter.weights_tags)
    note: str  # what its adapter says about the profile in use

    @property
    def resources(self) -> Resources:
        return self.entry.resources


def setup_method(
    registry,
    name: str,
    source: str,
    profile: str,
    overrides: Mapping[str, Any] | None,
    allow_dirty: bool = False,
) -> MethodSetup:
    """Resolve ``name``'s source (``auto``: upstream when its checkout is there) and config;
    a pretrained backbone whose weights cannot be found is a UserError here, before any
    trial runs."""
    from orchestrator.vendor import resolve_source

    entry = registry.get(name)
    cls = entry.adapter_class()
    source, state = resolve_source(entry, cls, source, allow_dirty=allow_dirty)
    upstream = source == "upstream"
    commit = (state.head if state else entry.commit) if upstream else ""
    clean = state.clean if (state and upstream) else None
    config = entry.resolved_config(profile, overrides)
    weights = cls.weights_tags(config, source, verify=True)
    note = cls.profile_notes.get(profile, "")
    return MethodSetup(name, entry, source, commit or "", clean, config, weights, note)


def seeded(config: Mapping[str, Any], seed: int | None) -> dict[str, Any]:
    """``config`` with ``seed`` (None: the config's own)."""
    return dict(config) if seed is None else {**config, "seed": int(seed)}


def trial_name(prefix: str, category: str, seed: int | None) -> str:
    return f"{prefix}/{category}" + (f"/seed{seed}" if seed is not None else "")


def trial_resources(res: Resources, device: str) -> dict[str, float]:
    """What one trial asks Ray for: the registry's cpu, gpu (none on a CPU trial) and
    memory_gb (orchestrator.scheduling.runner.fit_resources caps them to the cluster)."""
    gpu = res.gpu if device != "cpu" else 0.0
    return {"cpu": res.cpu, "gpu": gpu, "memory_gb": res.memory_gb}


def method_spec(
    ms: MethodSetup,
    category,
    fingerprint: str,
    seed: int | None,
    common: Mapping[str, Any],
    device: str,
    run_name: str,
) -> dict[str, Any]:
    """The spec of one trial of ``ms`` on ``category`` (a plain dict a worker can unpickle
    anywhere). ``common``: the job's keys (tracking, parent run, ``profile``, ``dataset``,
    ``project_commit``, ``cache``). The caller adds ``key`` (its trial key) to the spec and
    the tags. The category folder's preprocessing (orchestrator.data.preprocess.record) goes
    into ``preprocess`` and the tags."""
    from orchestrator.data.preprocess import record

    config = seeded(ms.config, seed)
    preprocess = record(category.root)
    tags = {
        "method": ms.name,
        "category": category.name,
        "dataset": common.get("dataset", ""),
        "dataset_fingerprint": fingerprint,
        "source": ms.source,
        "upstream_commit": ms.commit,
        "device": device,
        "profile": common["profile"],
        "seed": str(config.get("seed", "")),
        "project_commit": common.get("project_commit", ""),
        **preprocess,
    }
    return {
        **common,
        "method": ms.name,
        "category": category.name,
        "category_dir": str(Path(category.root).resolve()),
        "config": config,
        "seed": seed,
        "adapter": ms.entry.adapter,
        "adapter_dir": str(ms.entry.search_dir) if ms.entry.search_dir else None,
        "source": ms.source,
        "upstream_commit": ms.commit,
        "vendor_clean": ms.vendor_clean,
        "checkout": str(ms.entry.checkout_dir),
        "device": device,
        "tags": tags,
        "run_name": run_name,
        "preprocess": preprocess,
    }


def enter_worker(spec: Mapping[str, Any]) -> None:
    """What a worker takes from the driver's environment through the spec (a worker on
    another node does not inherit it): the cache folder (weights, fitted members)."""
    if spec.get("cache"):
        os.environ["ORCHESTRATOR_CACHE"] = spec["cache"]


def adapter_from_spec(spec: Mapping[str, Any]) -> Adapter:
    """The spec's adapter, as the driver resolved it (config, source, the checkout and its
    state); importing only this method's adapter keeps a worker from importing every
    registered method."""
    from orchestrator.registry import import_adapter

    cls = import_adapter(spec["adapter"], spec.get("adapter_dir"))
    adapter = cls(spec["config"], device=spec["device"], source=spec["source"])
    adapter.upstream_commit = spec.get("upstream_commit") or None
    adapter.vendor_clean = spec.get("vendor_clean")
    adapter.checkout = spec.get("checkout")
    return adapter


def trial_tags(adapter: Adapter, spec: Mapping[str, Any]) -> dict[str, str]:
    """What a trial's run is tagged with once its adapter is built (registry.run_tags: the
    source used, the checkout's state, the weights), plus the method and adapter class."""
    from orchestrator.registry import run_tags

    tags = {**run_tags(adapter), "method": spec["method"], "adapter": spec["adapter"]}
    return {**tags, **ray_node_tag()}


def ray_node_tag() -> dict[str, str]:
    """``ray_node``: the Ray node this trial runs on (the first 12 hex digits of its node id,
    ``NodeID`` in ``ray.nodes()``); none outside Ray (``--in-process``)."""
    import sys

    ray = sys.modules.get("ray")  # not imported for it: a run without Ray has no node
    if ray is None or not ray.is_initialized():
        return {}
    return {"ray_node": ray.get_runtime_context().get_node_id()[:12]}


def trial_params(spec: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's MLflow parameters: ``config`` (nested: its keys prefixed with the method's,
    ``patchcore.coreset_percentage``) and the axes every trial shares (method, category,
    seed, profile, preprocessing), so that runs of different methods compare on common
    columns."""
    seed = spec["config"].get("seed") if spec.get("seed") is None else spec["seed"]
    return {
        **config,
        "method": spec["method"],
        "category": spec["category"],
        "seed": "" if seed is None else seed,
        "profile": spec["profile"],
        **spec.get("preprocess", {"preprocess": "none"}),
    }


def detector_info(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial's saved detector (its MLflow Model) says about where it came from."""
    keys = ("method", "category", "source", "upstream_commit", "profile", "run_name")
    info = {k: spec.get(k) for k in keys}
    tags = spec.get("tags", {})
    for k in ("dataset", "dataset_fingerprint", "project_commit", "seed", "trial_key"):
        info[k] = tags.get(k, "")
    # a detector fitted on preprocessed images expects images preprocessed the same way
    info["preprocess"] = dict(spec.get("preprocess", {"preprocess": "none"}))
    return info


def weights_notice(setups: Sequence, profile: str) -> list[str]:
    """Start-up lines: where each method's backbone weights come from (random weights said
    loudly), and what an adapter says about this profile (e.g. DRAEM at the quick one)."""
    lines = []
    for ms in setups:
        source = ms.weights.get("weights_source", "none")
        if source != "none":
            what = f"{ms.weights['weights_backbone']} from {source}"
            if source.startswith("random"):
                what += ": pretrained is false, these are NOT ImageNet features"
            lines.append(f"weights: {ms.name}: {what}")
        if ms.note:
            lines.append(f"note: {ms.name} at the {profile} profile: {ms.note}")
    return lines
