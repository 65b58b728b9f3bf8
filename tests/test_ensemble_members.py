"""Member artifacts of the ensemble: loaded only when they are what their member-fit run
saved (the recorded sha256) and of the adapter class the registry expects; every torch.load
of the project loads weights only. A real MLflow sqlite store in tmp_path, no Ray."""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from adapters.conformance import make_tiny_category
from adapters.pixelstats import PixelStats
from orchestrator.ensemble import members as M
from orchestrator.errors import UserError
from orchestrator.paths import REPO_ROOT

PIXELSTATS = "adapters.pixelstats:PixelStats"

#: another importable Adapter subclass; importing its module leaves a marker file
EVIL_MODULE = """
from pathlib import Path
from adapters.pixelstats import PixelStats

Path({marker!r}).write_text("imported")


class Evil(PixelStats):
    pass
"""


@pytest.fixture
def fitted(tmp_path, monkeypatch):
    """One member fitted by member_fit_trial into a fresh cache and a real MLflow store."""
    from mlflow import MlflowClient

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("members", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp).info.run_id
    cat = make_tiny_category(tmp_path / "data")
    config = {"grid": [8, 8], "seed": 0}
    key = M.member_key("px", cat.name, config, "fp", "native", None)
    spec = {
        "tracking_uri": uri,
        "experiment_id": exp,
        "parent_run_id": parent,
        "registry": None,
        "key": key,
        "method": "px",
        "category": cat.name,
        "category_dir": str(Path(cat.root).resolve()),
        "config": config,
        "adapter": PIXELSTATS,
        "source": "native",
        "upstream_commit": "",
        "checkout": None,
        "device": "cpu",
        "seed": None,
        "tags": {"method": "px", "category": cat.name},
    }
    assert M.member_fit_trial(spec) == {"key": key, "fitted": True}
    (run,) = [
        r for r in client.search_runs([exp]) if r.data.tags.get("orchestrator.role") == "member_fit"
    ]
    marker = tmp_path / "evil-imported"
    evil_dir = tmp_path / "evil_pkg"
    evil_dir.mkdir()
    (evil_dir / "evil_member_mod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(evil_dir))
    yield {
        "key": key,
        "uri": uri,
        "exp": exp,
        "client": client,
        "run": run,
        "artifact": _artifact_dir(run) / "model",
        "marker": marker,
    }
    sys.modules.pop("evil_member_mod", None)


def _artifact_dir(run) -> Path:
    return Path(unquote(urlparse(run.info.artifact_uri).path))


def _load(f, **kw) -> PixelStats:
    return M.load_member(f["key"], "cpu", f["uri"], f["exp"], **kw)


def _drop_cache(f) -> None:
    shutil.rmtree(M.member_dir(f["key"]))


def _set_class(folder: Path, adapter: str) -> None:
    meta = json.loads((folder / "adapter.json").read_text())
    meta["adapter"] = adapter
    (folder / "adapter.json").write_text(json.dumps(meta, indent=2))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _nothing_imported(f) -> None:
    assert not f["marker"].exists() and "evil_member_mod" not in sys.modules


def test_member_fit_records_the_hash_and_untouched_members_load(fitted):
    f = fitted
    d = M.member_dir(f["key"])
    recorded = f["run"].data.tags[M.MEMBER_HASH_TAG]
    assert recorded == M.folder_sha256(f["artifact"]) == M.folder_sha256(d)
    mine = json.loads((d / M.MEMBER_META).read_text())
    assert mine["sha256"] == recorded and mine["run_id"] == f["run"].info.run_id
    local = _load(f, expected_adapter=PIXELSTATS)  # the local cache folder
    assert type(local) is PixelStats and local.fitted
    _drop_cache(f)
    downloaded = _load(f, expected_adapter=PIXELSTATS)  # the MLflow artifact
    assert type(downloaded) is PixelStats
    np.testing.assert_array_equal(downloaded.mean_, local.mean_)
    assert json.loads((d / M.MEMBER_META).read_text())["sha256"] == recorded
    assert type(_load(f)) is PixelStats  # no expected class: the hash is still checked


def test_artifact_naming_another_adapter_class_is_refused(fitted):
    f = fitted
    run_id = f["run"].info.run_id
    _drop_cache(f)
    _set_class(f["artifact"], "evil_member_mod:Evil")
    # the recorded hash no longer matches: refused, whatever class is expected
    for expected in (PIXELSTATS, None):
        with pytest.raises(UserError, match=f"MLflow run {run_id}.*do not match"):
            _load(f, expected_adapter=expected)
    # whoever could rewrite the artifact could also re-record its hash: the class decides
    f["client"].set_tag(run_id, M.MEMBER_HASH_TAG, M.folder_sha256(f["artifact"]))
    with pytest.raises(UserError, match=f"run {run_id}.*'evil_member_mod:Evil'.*{PIXELSTATS}"):
        _load(f, expected_adapter=PIXELSTATS)
    _nothing_imported(f)
    assert not M.is_cached(f["key"])  # nothing installed either


def test_artifact_with_changed_bytes_is_refused(fitted):
    f = fitted
    run_id = f["run"].info.run_id
    _drop_cache(f)
    _flip_a_byte(f["artifact"] / "pixelstats.npz")
    with pytest.raises(UserError, match=f"MLflow run {run_id}.*do not match"):
        _load(f, expected_adapter=PIXELSTATS)
    assert not M.is_cached(f["key"])
    (f["artifact"] / "extra.py").write_text("")  # an added file changes the hash too
    with pytest.raises(UserError, match="do not match"):
        _load(f, expected_adapter=PIXELSTATS)


def test_run_without_a_recorded_hash_is_refused(fitted):
    f = fitted
    _drop_cache(f)
    f["client"].delete_tag(f["run"].info.run_id, M.MEMBER_HASH_TAG)
    with pytest.raises(UserError, match=f"no {M.MEMBER_HASH_TAG} recorded"):
        _load(f, expected_adapter=PIXELSTATS)


def test_tampered_local_cache_is_refused(fitted):
    f = fitted
    d = M.member_dir(f["key"])
    run_id = f["run"].info.run_id
    original = (d / "pixelstats.npz").read_bytes()
    _flip_a_byte(d / "pixelstats.npz")
    with pytest.raises(UserError, match=f"cache folder .*run {run_id}.*do not match"):
        _load(f, expected_adapter=PIXELSTATS)
    (d / "pixelstats.npz").write_bytes(original)
    _set_class(d, "evil_member_mod:Evil")
    with pytest.raises(UserError, match="do not match"):
        _load(f, expected_adapter=PIXELSTATS)
    # member.json rewritten to fit: the expected class still decides
    mine = json.loads((d / M.MEMBER_META).read_text())
    (d / M.MEMBER_META).write_text(json.dumps({**mine, "sha256": M.folder_sha256(d)}))
    with pytest.raises(UserError, match="names adapter 'evil_member_mod:Evil'"):
        _load(f, expected_adapter=PIXELSTATS)
    _nothing_imported(f)


def test_cache_folder_without_member_json_is_not_trusted(fitted):
    """A folder from before hashes were kept is fetched again from its (checked) run."""
    f = fitted
    d = M.member_dir(f["key"])
    (d / M.MEMBER_META).unlink()
    _set_class(d, "evil_member_mod:Evil")
    assert not M.is_cached(f["key"])
    assert type(_load(f, expected_adapter=PIXELSTATS)) is PixelStats
    assert json.loads((d / "adapter.json").read_text())["adapter"] == PIXELSTATS
    _nothing_imported(f)


def test_expected_class_accepts_the_package_spelling():
    """``adapters.csflow:CSFlow`` (registry) saves as ``adapters.csflow.adapter:CSFlow``."""
    cls, spellings = M._adapter_class("adapters.csflow:CSFlow")
    assert spellings == {"adapters.csflow:CSFlow", f"{cls.__module__}:{cls.__qualname__}"}


# --- torch.load --------------------------------------------------------------------------


def _torch_load_calls(path: Path) -> list[ast.Call]:
    """The calls of torch.load in a module, however torch or load were imported."""
    tree = ast.parse(path.read_text(), str(path))
    torch_names, load_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {a.asname or a.name for a in node.names if a.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        if (
            isinstance(fn, ast.Attribute)
            and fn.attr == "load"
            and isinstance(fn.value, ast.Name)
            and fn.value.id in torch_names
        ) or (isinstance(fn, ast.Name) and fn.id in load_names):
            calls.append(node)
    return calls


def test_every_torch_load_passes_weights_only_true():
    found, bad = 0, []
    for folder in ("adapters", "orchestrator"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for call in _torch_load_calls(path):
                found += 1
                kw = {k.arg: k.value for k in call.keywords}
                value = kw.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    bad.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno}")
    assert found >= 3, found  # the engines (adapters.common.engine), weights, ensemble
    assert not bad, "torch.load without weights_only=True: " + ", ".join(bad)
