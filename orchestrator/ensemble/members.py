"""The member fit cache: a member fitted for (method, category, config, dataset fingerprint,
source, commit) is saved once, locally under ``cache_dir()/"members"/<key>`` and as the
``model`` artifact of its MLflow member-fit run, and loaded by every ensemble trial."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.base import Adapter
from orchestrator.paths import cache_dir

MEMBER_KEY_TAG = "member_key"


def member_key(
    method: str,
    category: str,
    config: Mapping[str, Any],
    fingerprint: str,
    source: str,
    commit: str | None,
) -> str:
    from orchestrator.data.validation import PROTOCOL
    from orchestrator.tracking import trial_key

    return trial_key(
        protocol=PROTOCOL,  # fitted on the protocol's training images
        method=method,
        category=category,
        config=dict(config),
        dataset_fingerprint=fingerprint,
        source=source,
        commit=commit or "",
    )


def member_dir(key: str) -> Path:
    return cache_dir() / "members" / key


def is_cached(key: str) -> bool:
    return (member_dir(key) / "adapter.json").exists()


def load_member(
    key: str, device: str = "cpu", tracking_uri: str | None = None, experiment_id: str | None = None
) -> Adapter:
    """The cached member: local folder, else the artifact of its MLflow member-fit run."""
    from orchestrator.registry import import_adapter

    d = member_dir(key)
    if not is_cached(key) and tracking_uri and experiment_id:
        _download(key, tracking_uri, experiment_id)
    if not is_cached(key):
        raise FileNotFoundError(f"member {key} is not in the cache")
    meta = json.loads((d / "adapter.json").read_text())
    return import_adapter(meta["adapter"]).load(d, device=device)


def _download(key: str, uri: str, experiment_id: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{MEMBER_KEY_TAG}` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run.info.run_id, "model", tmp)
            _install(Path(local), key)
        return


def _install(src: Path, key: str) -> None:
    """Copy a saved member into the cache atomically (a concurrent writer may win)."""
    dest = member_dir(key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{key}-"))
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    try:
        tmp.rename(dest)
    except OSError:  # already there
        shutil.rmtree(tmp, ignore_errors=True)


def member_fit_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Ray trainable: fit one member (unless cached), save it, log an MLflow member-fit run.

    Returns ``{"key", "fitted"}``; ``fitted`` is False on a cache hit.
    """
    from adapters.common import seed_everything
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_train
    from orchestrator.registry import import_adapter, registry_importable, run_tags
    from orchestrator.tracking import open_child_run

    registry_importable(spec.get("registry"))
    key = spec["key"]
    if is_cached(key):
        return {"key": key, "fitted": False}
    tags = {**spec["tags"], MEMBER_KEY_TAG: key, "orchestrator.role": "member_fit"}
    name = f"fit {spec['method']}/{spec['category']}"
    with (
        open_child_run(
            spec["tracking_uri"], spec["experiment_id"], spec["parent_run_id"], name, tags
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run.log_params(spec["config"])
        cls = import_adapter(spec["adapter"])
        adapter = cls(spec["config"], device=spec["device"], source=spec["source"])
        adapter.upstream_commit = spec["upstream_commit"] or None
        adapter.checkout = spec.get("checkout")
        run.set_tags(run_tags(adapter))
        # the validation protocol's training images (train/good less any hold-out)
        train, _ = protocol_train(load_category(Path(spec["category_dir"])))
        seed_everything(int(adapter.config.get("seed", 0)))
        t0 = time.perf_counter()
        adapter.fit(train)
        run.log_metrics({"fit_seconds": time.perf_counter() - t0})
        saved = adapter.save(Path(tmp) / "model")
        run.log_artifacts(saved, "model")
        _install(saved, key)
    return {"key": key, "fitted": True}
