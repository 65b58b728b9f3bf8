"""FeatureEnsemble through the conformance kit, and the `orchestrate ensemble` job end to end
(Ray + a real MLflow store) with pixelstats-type members: fit counting, caching, MLflow."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters.conformance import check_adapter, make_tiny_category
from orchestrator.ensemble.adapter import FeatureEnsemble

TINY = {
    "members": ["pixelstats"],
    "member_overrides": {"pixelstats": {"grid": [16, 16]}},
    "hidden": 32,
    "epochs": 20,
    "batch_size": 256,
    "noise_std": 1.0,
    "smoothing_sigma": 1.0,
}

REGISTRY = """
methods:
  px_a: {adapter: "adapters.pixelstats:PixelStats", params: {grid: [8, 8], seed: 0},
         status: available, default: false, resources: {cpu: 1, gpu: 0, memory_gb: 1}}
  px_b: {adapter: "adapters.pixelstats:PixelStats", params: {grid: [16, 16], seed: 0},
         status: available, default: false, resources: {cpu: 1, gpu: 0, memory_gb: 1}}
  px_c: {adapter: "adapters.pixelstats:PixelStats", params: {grid: [12, 12], seed: 0},
         status: available, default: false, resources: {cpu: 1, gpu: 0, memory_gb: 1}}
"""


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_feature_ensemble_passes_conformance():
    report = check_adapter(FeatureEnsemble, config=TINY)
    assert "save-load" in report.passed and "deterministic" in report.passed


def test_prefitted_members_are_not_refitted(tmp_path):
    from adapters.pixelstats import PixelStats

    cat = make_tiny_category(tmp_path)
    train = cat.split("train")
    calls = []

    class Counting(PixelStats):
        def _fit(self, data):
            calls.append(1)
            super()._fit(data)

    members = [Counting({"grid": [8, 8]}).fit(train), Counting({"grid": [16, 12]}).fit(train)]
    assert len(calls) == 2
    ens = FeatureEnsemble({**TINY, "members": ["a", "b"], "components": 5}).use_members(members)
    ens.fit(train)
    assert len(calls) == 2  # no refit
    assert ens.transform_.shares == [2, 3]  # 5 over 2 members: remainder to the second
    feats = ens.extract_features(cat.split("test"))
    assert feats.features.shape == (len(cat.split("test")), 5, 16, 12)


def test_ensemble_job_fits_each_member_once_and_logs_to_mlflow(tmp_path, monkeypatch):
    """In-process trials (the same trainables Ray runs); the Ray version is the heavy test."""
    _ensemble_job(tmp_path, monkeypatch, in_process=True)


@pytest.mark.heavy
def test_ensemble_job_on_ray(tmp_path, monkeypatch):
    _ensemble_job(tmp_path, monkeypatch, in_process=False)


def _ensemble_job(tmp_path, monkeypatch, in_process: bool) -> None:
    from mlflow import MlflowClient

    from orchestrator.ensemble.run import EnsembleOptions, run_ensemble
    from orchestrator.scheduling import ray_session

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    make_tiny_category(tmp_path / "data")
    (tmp_path / "reg.yaml").write_text(REGISTRY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    opts = EnsembleOptions(
        members=["px_a", "px_b", "px_c"],
        combinations="pairs",
        dataset=str(tmp_path / "data"),
        sets=["ensemble.epochs=3", "ensemble.hidden=16", "ensemble.batch_size=256"],
        tracking_uri=uri,
        registry=tmp_path / "reg.yaml",
        profile="quick",
        max_concurrent=2,
        in_process=in_process,
    )
    with ray_session(num_cpus=2) if not in_process else contextlib.nullcontext():
        first = run_ensemble(opts)
        # a new combination of the same members: loaded from the cache, nothing refitted
        again = run_ensemble(replace(opts, combinations="given"))
    assert first.failed == 0, first.rows
    assert first.fits == 3  # 3 pairs of 3 members: each member fitted exactly once
    assert again.fits == 0  # all cached
    client = MlflowClient(tracking_uri=first.tracking_uri)
    runs = client.search_runs([first.experiment_id], max_results=200)
    fits = [r for r in runs if r.data.tags.get("orchestrator.role") == "member_fit"]
    assert len(fits) == 3
    assert all(r.info.status == "FINISHED" for r in fits)
    assert client.list_artifacts(fits[0].info.run_id, "model")
    children = [
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == first.parent_run_id
        and r.data.tags.get("orchestrator.role") == "ensemble_trial"
    ]
    assert sorted(r.data.tags["members"] for r in children) == [
        "px_a+px_b",
        "px_a+px_c",
        "px_b+px_c",
    ]
    m = children[0].data.metrics
    for key in (
        "image_auroc",
        "feature.image_auroc",
        "output_mean.image_auroc",
        "output_cawpe.image_auroc",
        "calibration.bounded_sigmoid.ece",
        "calibration.platt.ece",
    ):
        assert key in m, key
    assert 0.0 <= m["image_auroc"] <= 1.0
    arts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"reliability.png", "reliability_platt.png", "scores.csv"} <= arts
    summary = {a.path for a in client.list_artifacts(first.parent_run_id, "summary")}
    assert "summary/comparison.md" in summary
    table = Path(
        client.download_artifacts(first.parent_run_id, "summary/comparison.md", str(tmp_path))
    )
    text = table.read_text()
    for approach in ("| px_a |", "mean[px_a+px_b]", "cawpe[px_a+px_b]", "feature[px_b+px_c]"):
        assert approach in text
    kinds = {r["kind"] for r in first.rows}
    assert kinds == {"member", "output", "feature"}
    assert np.isfinite([r["image_auroc"] for r in first.rows]).all()


@pytest.mark.heavy
def test_patchcore_simplenet_ensemble_end_to_end(tmp_path, monkeypatch, tiny_synthetic):
    from orchestrator.ensemble.run import EnsembleOptions, run_ensemble
    from orchestrator.registry import load_registry

    reg = load_registry()
    missing = [m for m in ("patchcore", "simplenet") if not reg.get(m).available]
    if missing:
        pytest.skip(f"adapters not available yet: {', '.join(missing)}")
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    res = run_ensemble(
        EnsembleOptions(
            members=["patchcore", "simplenet"],
            dataset=str(tiny_synthetic),
            categories=["pushpins"],
            sets=["ensemble.epochs=3", "ensemble.hidden=64"],
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            profile="quick",
            num_cpus=2,
        )
    )
    assert res.failed == 0 and res.fits == 2
    assert {r["kind"] for r in res.rows} == {"member", "output", "feature"}
