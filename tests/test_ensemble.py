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
    # 60 epochs: at 20 the network does not yet localise the kit's bright squares
    report = check_adapter(FeatureEnsemble, config=TINY | {"epochs": 60})
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


def _two_pixelstats(tmp_path, monkeypatch):
    """In-process ensemble options over px_a + px_b on the tiny category, a tiny network."""
    from orchestrator.ensemble.run import EnsembleOptions

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    make_tiny_category(tmp_path / "data")
    (tmp_path / "reg.yaml").write_text(REGISTRY)
    return EnsembleOptions(
        members=["px_a", "px_b"],
        dataset=str(tmp_path / "data"),
        sets=["ensemble.epochs=2", "ensemble.hidden=16", "ensemble.batch_size=256"],
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        registry=tmp_path / "reg.yaml",
        profile="quick",
        in_process=True,
    )


def test_ensemble_resume_skips_finished_trials(tmp_path, monkeypatch):
    """--resume: finished (combination, category) trials are not run again; their rows come
    back from MLflow with the same numbers; a changed network setting is a new trial."""
    from mlflow import MlflowClient

    from orchestrator.ensemble.run import run_ensemble

    opts = _two_pixelstats(tmp_path, monkeypatch)
    first = run_ensemble(opts)
    again = run_ensemble(replace(opts, resume=True))
    assert again.parent_run_id == first.parent_run_id
    client = MlflowClient(tracking_uri=first.tracking_uri)

    def trials() -> list:
        runs = client.search_runs([first.experiment_id], max_results=100)
        return [r for r in runs if r.data.tags.get("orchestrator.role") == "ensemble_trial"]

    assert len(trials()) == 1  # nothing ran again
    key = ("method", "kind", "category")
    before = {tuple(r[k] for k in key): r for r in first.rows}
    after = {tuple(r[k] for k in key): r for r in again.rows}
    assert before.keys() == after.keys() and len(before) == 5
    for k, row in before.items():
        for metric in ("image_auroc", "pixel_auroc", "au_spro_0.05", "ece"):
            assert after[k][metric] == pytest.approx(row[metric]), (k, metric)
    changed = run_ensemble(replace(opts, resume=True, sets=[*opts.sets, "ensemble.epochs=3"]))
    assert changed.parent_run_id == first.parent_run_id and len(trials()) == 2


def test_ensemble_seeds(tmp_path, monkeypatch):
    """--seeds: one member fit and one network trial per seed, rows tagged with their seed,
    the comparison table shows mean ± std (n), and --resume knows the seeds."""
    from mlflow import MlflowClient

    from orchestrator.ensemble.comparison import comparison_markdown
    from orchestrator.ensemble.run import run_ensemble

    opts = replace(_two_pixelstats(tmp_path, monkeypatch), seeds=[0, 1])
    first = run_ensemble(opts)
    assert first.fits == 4 and first.failed == 0  # 2 members x 1 category x 2 seeds
    feature = [r for r in first.rows if r["kind"] == "feature"]
    assert sorted(r["seed"] for r in feature) == [0, 1]
    # the network's seed differs, so its scores do; the table aggregates the two
    assert feature[0]["image_auroc"] != feature[1]["image_auroc"] or (
        feature[0]["pixel_auroc"] != feature[1]["pixel_auroc"]
    )
    table = comparison_markdown(first.rows)
    line = next(x for x in table.splitlines() if x.startswith("| feature["))
    vals = [r["pixel_auroc"] for r in feature]
    assert f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f} (n=2)" in line
    client = MlflowClient(tracking_uri=first.tracking_uri)
    runs = client.search_runs([first.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("orchestrator.role") == "ensemble_trial"]
    assert sorted(r.data.tags["seed"] for r in trials) == ["0", "1"]
    again = run_ensemble(replace(opts, resume=True, seeds=[0, 1, 2]))
    assert again.fits == 2  # only seed 2's members are new
    runs = client.search_runs([first.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("orchestrator.role") == "ensemble_trial"]
    assert sorted(r.data.tags["seed"] for r in trials) == ["0", "1", "2"]


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
    # the network's training curve: its loss every epoch, the validation AUROC at the end
    run_id = children[0].info.run_id
    assert sorted(p.step for p in client.get_metric_history(run_id, "train_loss")) == [1, 2, 3]
    curve = client.get_metric_history(run_id, "curve_validation_image_auroc")
    assert curve and max(p.step for p in curve) == 3
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


PC_SN_SETS = [
    "patchcore.image_size=[48,64]",
    "simplenet.image_size=[48,64]",
    "simplenet.meta_epochs=2",
    "simplenet.dsc_hidden=64",
    "ensemble.epochs=3",
    "ensemble.hidden=64",
]


def test_patchcore_simplenet_ensemble_end_to_end(tmp_path, monkeypatch, tiny_synthetic):
    """patchcore + simplenet on a generated category, in process (Ray: the heavy variant)."""
    _patchcore_simplenet(tmp_path, monkeypatch, tiny_synthetic, in_process=True)


@pytest.mark.heavy
def test_patchcore_simplenet_ensemble_on_ray(tmp_path, monkeypatch, tiny_synthetic):
    _patchcore_simplenet(tmp_path, monkeypatch, tiny_synthetic, in_process=False)


def _patchcore_simplenet(tmp_path, monkeypatch, root: Path, in_process: bool) -> None:
    from mlflow import MlflowClient

    from orchestrator.ensemble.run import EnsembleOptions, run_ensemble

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    res = run_ensemble(
        EnsembleOptions(
            members=["patchcore", "simplenet"],
            dataset=str(root),
            categories=["pushpins"],
            sets=PC_SN_SETS,
            source="native",
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            profile="quick",
            num_cpus=2,
            in_process=in_process,
        )
    )
    assert res.failed == 0 and res.fits == 2, res.rows
    approaches = {r["method"] for r in res.rows}
    assert approaches == {
        "patchcore",
        "simplenet",
        "mean[patchcore+simplenet]",
        "cawpe[patchcore+simplenet]",
        "feature[patchcore+simplenet]",
    }
    client = MlflowClient(tracking_uri=res.tracking_uri)
    runs = client.search_runs([res.experiment_id], max_results=50)
    fits = {
        r.data.tags["method"] for r in runs if r.data.tags.get("orchestrator.role") == "member_fit"
    }
    assert fits == {"patchcore", "simplenet"}
    (trial,) = [r for r in runs if r.data.tags.get("orchestrator.role") == "ensemble_trial"]
    assert trial.data.tags["mlflow.parentRunId"] == res.parent_run_id
    assert trial.data.tags["members"] == "patchcore+simplenet"
    assert trial.info.status == "FINISHED"
    m = trial.data.metrics
    # the trial's own metrics are the feature-level network's, prefixed copies for the rest
    assert m["image_auroc"] == m["feature.image_auroc"]
    for key in ("member.patchcore.image_auroc", "output_cawpe.pixel_auroc", "components"):
        assert key in m, key
    assert m["components"] == 256  # default total: the first member's channel count
    saved = {a.path for a in client.list_artifacts(trial.info.run_id, "model/artifacts/detector")}
    assert "model/artifacts/detector/adapter" in saved  # the network with its members
    # the logged MLflow Model loads (network, members, calibration, threshold) and predicts
    # like the network that was fitted
    from orchestrator.data import load_category
    from orchestrator.models.pyfunc import load_detector

    det = load_detector(f"runs:/{trial.info.run_id}/model", "cpu", res.tracking_uri)
    assert isinstance(det.adapter, FeatureEnsemble) and len(det.adapter.members) == 2
    assert det.thresholds.image == pytest.approx(m["image_threshold"])
    test = load_category(root / "pushpins").split("test")
    scores = det.adapter.predict(test).image_scores
    rows = {r["method"]: r for r in res.rows}
    from sklearn.metrics import roc_auc_score

    auroc = roc_auc_score(test.is_anomalous, scores)
    assert auroc == pytest.approx(rows["feature[patchcore+simplenet]"]["image_auroc"])
    text = Path(
        client.download_artifacts(res.parent_run_id, "summary/comparison.md", str(tmp_path))
    ).read_text()
    assert "| feature[patchcore+simplenet] | feature | pushpins |" in text
