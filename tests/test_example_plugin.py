"""The example plugin (examples/knn_plugin) as a third party would use it: installed into a
folder of its own, registered under a name other than its class' (``patchknn`` for
``KnnPatch.name == "knn"``), checked, surveyed natively, then pointed at a throwaway git
repository as its pinned upstream: synced, surveyed with ``--source upstream`` (the trial
tagged with that commit) and compared with ``parity``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.paths import REPO_ROOT

PLUGIN = REPO_ROOT / "examples" / "knn_plugin"
#: the upstream repository's one module (numpy): a reference kNN the plugin drives unmodified
REFERENCE = '''
import numpy as np


def nearest(bank, queries, k):
    """Mean distance of each query row to its k nearest rows of bank (row by row, so a
    row's result never depends on the other rows)."""
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        d = np.sqrt(((bank - q) ** 2).sum(1))
        out[i] = np.sort(d)[:k].mean()
    return out
'''


def _run(cmd: list[str], cwd: Path, env: dict[str, str], ok: bool = True):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert res.returncode == 0, f"{cmd[3:6]}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git for the upstream repository")
def test_example_plugin_end_to_end(tmp_path):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    build = tmp_path / "plugin-src"  # pip writes build files beside the source: a copy
    shutil.copytree(PLUGIN, build, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run([*pip, "--target", str(site), str(build)], cwd=tmp_path, env=dict(os.environ))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env |= {"PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT)]),
            "ORCHESTRATOR_VENDOR": str(tmp_path / "vendor"),
            "ORCHESTRATOR_CACHE": str(tmp_path / "cache")}  # fmt: skip
    orch = [sys.executable, "-m", "orchestrator"]

    out = _run([*orch, "check", "patchknn", "--source", "native"], tmp_path, env).stdout
    assert out.startswith("check patchknn (native source"), out
    assert "predict-ignores-labels" in out and "FAIL" not in out and "0 failed" in out

    data = tmp_path / "data"
    synth = ["datasets", "synth", "--out", str(data), "--categories", "pushpins",
             "--size", "64x64", "--train", "6", "--test", "2"]  # fmt: skip
    _run([*orch, *synth], tmp_path, env)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--dataset", str(data), "--methods", "patchknn", "--tracking-uri", uri,
              "--profile", "quick", "--num-cpus", "2"]  # fmt: skip
    _run([*orch, "survey", *common, "--source", "native", "--in-process"], tmp_path, env)

    upstream = tmp_path / "knn-reference"
    upstream.mkdir()
    (upstream / "knn_reference.py").write_text(REFERENCE)
    _git(upstream, "init", "-q")
    _git(upstream, "add", ".")
    _git(upstream, "commit", "-q", "-m", "reference kNN")
    sha = _git(upstream, "rev-parse", "HEAD")
    reg = tmp_path / "my.yaml"
    reg.write_text(f"methods:\n  patchknn:\n    repo: {upstream}\n    commit: {sha}\n")
    synced = _run([*orch, "vendor", "sync", "patchknn", "--registry", str(reg)], tmp_path, env)
    assert (tmp_path / "vendor" / "patchknn" / "knn_reference.py").exists(), synced.stdout
    _run([*orch, "survey", *common, "--source", "upstream", "--registry", str(reg)], tmp_path, env)

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("survey")
    runs = client.search_runs([exp.experiment_id], "tags.method = 'patchknn'")
    by_source = {r.data.tags["source"]: r for r in runs}
    assert set(by_source) == {"native", "upstream"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert by_source["upstream"].data.tags["upstream_commit"] == sha
    assert by_source["native"].data.tags["upstream_commit"] == ""
    up, nat = (by_source[s].data.metrics["image_auroc"] for s in ("upstream", "native"))
    assert abs(up - nat) < 1e-3  # the same method by two sources

    par = _run([*orch, "parity", "patchknn", "--registry", str(reg), "--dataset", str(data),
                "--category", "pushpins"], tmp_path, env)  # fmt: skip
    assert f"upstream @{sha[:7]}" in par.stdout and ": met" in par.stdout, par.stdout

    # a modified checkout: refused with a flag that exists, run with it (tagged dirty)
    (tmp_path / "vendor" / "patchknn" / "knn_reference.py").write_text(REFERENCE + "# edit\n")
    status = _run([*orch, "vendor", "status", "patchknn", "--registry", str(reg)], tmp_path, env)
    assert status.stdout.splitlines()[1].split()[:4] == ["patchknn", "yes", "yes", "no"]
    check = [*orch, "check", "patchknn", "--source", "upstream", "--registry", str(reg)]
    refused = _run(check, tmp_path, env, ok=False)
    assert refused.returncode == 2 and "--allow-dirty" in refused.stderr, refused.stderr
    dirty = _run([*check, "--allow-dirty"], tmp_path, env).stdout
    assert "(upstream source" in dirty and "0 failed" in dirty
