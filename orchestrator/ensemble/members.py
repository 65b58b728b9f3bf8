"""The member fit cache: a member fitted for (method, category, config, dataset fingerprint,
source, commit) is saved once, locally under ``cache_dir()/"members"/<key>`` and as the
``model`` artifact of its MLflow member-fit run, and loaded by every ensemble trial.

A member is loaded only when it is what its member-fit run saved: the run records a sha256
over the model folder (tag ``member_sha256``, :func:`folder_sha256`), a downloaded artifact
and a local cache folder (which keeps the hash and the run id in ``member.json`` next to
``adapter.json``) must match it, and the adapter class their ``adapter.json`` names must be
the one the registry expects for the member. Nothing is imported from a folder that fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.base import Adapter
from orchestrator.errors import UserError
from orchestrator.paths import cache_dir

MEMBER_KEY_TAG = "member_key"
#: run tag of a member-fit run: the sha256 of its ``model`` artifact (folder_sha256)
MEMBER_HASH_TAG = "member_sha256"
#: what a local cache folder records about itself (sha256, run id), next to adapter.json
MEMBER_META = "member.json"


def member_key(
    method: str,
    category: str,
    config: Mapping[str, Any],
    fingerprint: str,
    source: str,
    commit: str | None,
    preprocess: Mapping[str, str] | None = None,
) -> str:
    """``preprocess``: the category's (orchestrator.data.preprocess.record); a member fitted
    on images preprocessed another way is another member."""
    from orchestrator.data.preprocess import key_part
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
        **key_part(preprocess or {}),
    )


def member_dir(key: str) -> Path:
    return cache_dir() / "members" / key


def is_cached(key: str) -> bool:
    """A local folder written by this code (``adapter.json`` and ``member.json``); one from
    before hashes were recorded counts as absent (it is fitted or downloaded again)."""
    d = member_dir(key)
    return (d / "adapter.json").exists() and (d / MEMBER_META).exists()


def folder_sha256(folder: Path) -> str:
    """sha256 over a saved model folder: every file's relative path (sorted, ``/``-separated)
    and bytes, length-prefixed; ``member.json`` at the top is not part of it. Links are
    refused (what they point at could change behind the hash)."""
    folder = Path(folder)
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in [*dirnames, *filenames]:
            if (Path(dirpath) / n).is_symlink():
                raise UserError(f"{folder}: {Path(dirpath, n).relative_to(folder)} is a link")
        files += [Path(dirpath, n).relative_to(folder).as_posix() for n in filenames]
    h = hashlib.sha256()
    for rel in sorted(f for f in files if f != MEMBER_META):
        data = (folder / rel).read_bytes()
        name = rel.encode()
        h.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _adapter_class(expected: str, adapter_dir: str | None = None):
    """The class a registry entry's ``adapter`` names (``adapter_dir``: the entry's
    ``search_dir``, for adapters beside a user registry), and how ``adapter.json`` spells it
    (``module:qualname`` of the class itself; ``adapters.csflow:CSFlow`` saves as
    ``adapters.csflow.adapter:CSFlow``)."""
    from orchestrator.registry import import_adapter

    cls = import_adapter(expected, adapter_dir)
    return cls, {expected, f"{cls.__module__}:{cls.__qualname__}"}


def _check_folder(
    d: Path,
    recorded: str | None,
    expected_adapter: str | None,
    where: str,
    adapter_dir: str | None = None,
) -> type[Adapter] | None:
    """Refuse a member folder whose hash is not ``recorded`` or whose adapter.json names
    another class than ``expected_adapter``; the expected class (None: not checked)."""
    if not recorded:
        raise UserError(
            f"member {where}: no {MEMBER_HASH_TAG} recorded (fitted before member hashes were "
            "kept?); refusing it: delete that run or the cache folder so the member is refitted"
        )
    actual = folder_sha256(d)
    if actual != recorded:
        raise UserError(
            f"member {where}: its files do not match the recorded {MEMBER_HASH_TAG} "
            f"(recorded {recorded[:16]}, found {actual[:16]}); refusing to load it"
        )
    if expected_adapter is None:
        return None
    try:
        named = json.loads((d / "adapter.json").read_text()).get("adapter")
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"member {where}: unreadable adapter.json ({exc})") from exc
    cls, spellings = _adapter_class(expected_adapter, adapter_dir)
    if named not in spellings:
        raise UserError(
            f"member {where}: adapter.json names adapter {named!r}, but the registry expects "
            f"{expected_adapter!r}; refusing to load it"
        )
    return cls


def load_member(
    key: str,
    device: str = "cpu",
    tracking_uri: str | None = None,
    experiment_id: str | None = None,
    expected_adapter: str | None = None,
    adapter_dir: str | None = None,
) -> Adapter:
    """The cached member: local folder, else the artifact of its MLflow member-fit run.

    Either must match the sha256 its member-fit run recorded (UserError otherwise) and, when
    ``expected_adapter`` (the registry entry's ``module:Class``) is given, name that class in
    its adapter.json; it is then loaded with the expected class, never with the class the
    folder names. ``adapter_dir``: the registry entry's ``search_dir`` (user adapters).
    """
    from orchestrator.registry import import_adapter

    d = member_dir(key)
    if not is_cached(key) and tracking_uri and experiment_id:
        _download(key, tracking_uri, experiment_id, expected_adapter, adapter_dir)
    if not is_cached(key):
        raise FileNotFoundError(f"member {key} is not in the cache")
    try:
        mine = json.loads((d / MEMBER_META).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"member {key}: unreadable {d / MEMBER_META} ({exc})") from exc
    if not isinstance(mine, dict):
        mine = {}
    where = f"{key} (cache folder {d}, from run {mine.get('run_id') or '?'})"
    cls = _check_folder(d, mine.get("sha256"), expected_adapter, where, adapter_dir)
    if cls is None:  # no expected class given: the one the (hash-checked) folder names
        cls = import_adapter(json.loads((d / "adapter.json").read_text())["adapter"], adapter_dir)
    return cls.load(d, device=device)


def _download(
    key: str,
    uri: str,
    experiment_id: str,
    expected_adapter: str | None = None,
    adapter_dir: str | None = None,
) -> None:
    """Install the newest finished member-fit run's ``model`` artifact, once it is checked
    against the run's recorded sha256 and the expected adapter class."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{MEMBER_KEY_TAG}` = '{key}' and tags.`orchestrator.role` = 'member_fit'",
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        run_id = run.info.run_id
        recorded = run.data.tags.get(MEMBER_HASH_TAG)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(client.download_artifacts(run_id, "model", tmp))
            where = f"{key} (MLflow run {run_id})"
            _check_folder(local, recorded, expected_adapter, where, adapter_dir)
            _install(local, key, recorded, run_id)
        return


def _install(src: Path, key: str, sha256: str, run_id: str | None) -> None:
    """Copy a saved member into the cache atomically (a concurrent writer may win), with
    its ``member.json`` (sha256, run id); a folder from before hashes were kept is replaced."""
    dest = member_dir(key)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{key}-"))
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    meta = {"sha256": sha256, "run_id": run_id, "key": key}
    (tmp / MEMBER_META).write_text(json.dumps(meta, indent=2))
    for _ in range(2):
        try:
            tmp.rename(dest)
            return
        except OSError:  # already there
            if (dest / MEMBER_META).exists():
                break
            shutil.rmtree(dest, ignore_errors=True)  # an unhashed (older) folder
    shutil.rmtree(tmp, ignore_errors=True)


def member_fit_trial(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Ray trainable: fit one member (unless cached), save it, log an MLflow member-fit run.

    Returns ``{"key", "fitted"}``; ``fitted`` is False on a cache hit.
    """
    from adapters.common import seed_everything
    from orchestrator.data import load_category
    from orchestrator.data.validation import protocol_train
    from orchestrator.jobs.plan import adapter_from_spec, trial_tags
    from orchestrator.tracking.trials import open_trial_run

    key = spec["key"]
    if is_cached(key):
        return {"key": key, "fitted": False}
    tags = {**spec["tags"], MEMBER_KEY_TAG: key, "orchestrator.role": "member_fit"}
    with (
        open_trial_run(
            spec, spec.get("run_name") or f"fit {spec['method']}/{spec['category']}", tags
        ) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        run.log_params({**spec["config"], **spec.get("preprocess", {"preprocess": "none"})})
        adapter = adapter_from_spec(spec)
        run.set_tags(trial_tags(adapter, spec))
        # the validation protocol's training images (train/good less any hold-out)
        train, _ = protocol_train(load_category(Path(spec["category_dir"])))
        seed_everything(int(adapter.config.get("seed", 0)))
        t0 = time.perf_counter()
        adapter.fit(train)
        run.log_metrics({"fit_seconds": time.perf_counter() - t0})
        saved = adapter.save(Path(tmp) / "model")
        digest = folder_sha256(saved)
        run.set_tags({MEMBER_HASH_TAG: digest})  # what load_member checks the artifact against
        run.log_artifacts(saved, "model")
        _install(saved, key, digest, run.run_id)
    return {"key": key, "fitted": True}
