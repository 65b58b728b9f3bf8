"""`orchestrate survey` end to end with a real local Ray and a real MLflow store."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.preflight import parse_sets
from orchestrator.scheduling import ray_session

REGISTRY = """
methods:
  pixelstats_fine:
    adapter: adapters.pixelstats:PixelStats
    params: {grid: [48, 48], smoothing_sigma: 2.0, eps: 0.01, seed: 0}
    resources: {gpu: 0, cpu: 1, memory_gb: 1}
    default: false
  boom:
    adapter: boom_adapter:Boom
    params: {grid: [16, 16], smoothing_sigma: 1.0, eps: 0.01, seed: 0}
    resources: {gpu: 1, cpu: 1, memory_gb: 1}
    default: false
"""

BOOM = """
from adapters.pixelstats import PixelStats


class Boom(PixelStats):
    name = "boom"

    def _fit(self, train):
        raise RuntimeError("boom: fit exploded on purpose")
"""


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module (a survey joins it instead of starting its own)."""
    with ray_session(num_cpus=2) as res:
        yield res


@pytest.fixture
def user_registry(tmp_path) -> Path:
    (tmp_path / "boom_adapter.py").write_text(textwrap.dedent(BOOM))
    reg = tmp_path / "user_registry.yaml"
    reg.write_text(REGISTRY)
    return reg


def _children(client: MlflowClient, exp_id: str, parent: str):
    return client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent}'")


def test_parse_sets():
    assert parse_sets(["a.k=0.5", "a.l=[1, 2]", "b.x=true"], ["a", "b"]) == {
        "a": {"k": 0.5, "l": [1, 2]},
        "b": {"x": True},
    }
    with pytest.raises(UserError, match="method.key=value"):
        parse_sets(["nokey=1"], ["a"])
    with pytest.raises(UserError, match="not in this run"):
        parse_sets(["c.k=1"], ["a"])


def test_survey_end_to_end(tiny_synthetic, user_registry, tmp_path, ray_cluster, capsys):
    """2 working methods x 2 categories + one method that raises in fit, via the CLI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = [
        "survey",
        "--dataset",
        str(tiny_synthetic),
        "--methods",
        "pixelstats,pixelstats_fine,boom",
        "--registry",
        str(user_registry),
        "--tracking-uri",
        uri,
        "--experiment",
        "e2e",
        "--set",
        "pixelstats_fine.smoothing_sigma=1.5",
        "--retries",
        "1",
        "--output-dir",
        str(tmp_path / "reports"),
    ]
    assert main(argv) == 1  # a trial failed
    out = capsys.readouterr().out
    assert "no GPU -> trials run CPU-only" in out and "profile: quick" in out
    assert "failed trials:" in out and "boom: fit exploded on purpose" in out
    assert "image_auroc_mean" in out and "pixelstats_fine" in out

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e")
    parents = client.search_runs([exp.experiment_id], "tags.`orchestrator.role` = 'survey'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["profile"] == "quick"  # no GPU in the test cluster
    assert parent.data.tags["failed_trials"] == "2"
    runs = _children(client, exp.experiment_id, parent.info.run_id)
    good = [r for r in runs if r.data.tags["method"] != "boom"]
    boom = [r for r in runs if r.data.tags["method"] == "boom"]
    assert len(good) == 4 and len(boom) == 4  # boom: 2 categories x (try + 1 retry)

    for run in boom:
        assert run.info.status == "FAILED"
        assert "fit exploded on purpose" in run.data.tags["error"]
        assert run.data.tags["device"] == "cpu"  # asked for a GPU, the cluster has none
    text = Path(client.download_artifacts(boom[0].info.run_id, "error.txt", str(tmp_path)))
    assert "Traceback" in text.read_text() and "RuntimeError" in text.read_text()

    seen = set()
    for run in good:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert run.info.status == "FINISHED"
        seen.add((tags["method"], tags["category"]))
        for key in (
            "dataset_fingerprint",
            "source",
            "upstream_commit",
            "vendor_dirty",
            "project_commit",
            "device",
            "profile",
            "trial_key",
            "dataset",
        ):
            assert key in tags, key
        assert tags["source"] == "native" and tags["device"] == "cpu"
        assert len(tags["dataset_fingerprint"]) == 16
        for key in (
            "image_auroc",
            "image_auroc_logical",
            "image_auroc_structural",
            "image_auroc_mean",
            "pixel_auroc",
            "au_pro",
            "au_spro_0.05",
            "f1_max",
            "fit_seconds",
            "predict_seconds",
            "peak_memory_mb",
            "ece",
        ):
            assert key in metrics, key
        assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["fit_seconds"] >= 0
        if tags["method"] == "pixelstats_fine":
            assert params["pixelstats_fine.smoothing_sigma"] == "1.5"
            assert params["pixelstats_fine.grid"] == "[48, 48]"
        # the axes every method shares, as parameters (the compare view's plots)
        assert params["method"] == tags["method"] and params["category"] == tags["category"]
        assert params["profile"] == tags["profile"] and "seed" in params
        assert "vendor_clean" not in tags and "metric_names" not in tags
        assert int(tags["metric_count"]) == len(metrics)
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"scores.csv", "overlays.png", "roc.png", "reliability.png", "model"} <= arts
        model = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert "model/MLmodel" in model and "model/artifacts" in model
    assert seen == {
        (m, c) for m in ("pixelstats", "pixelstats_fine") for c in ("flat_connector", "pushpins")
    }

    # the parent holds the summary tables; they agree with the children's metrics
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {
        "summary/summary.md",
        "summary/summary.tex",
        "summary/summary_image_auroc_mean.csv",
        "summary/heatmap_image_auroc_mean.png",
    } <= summary
    import pandas as pd

    table = pd.read_csv(
        tmp_path / "reports" / "summary_image_auroc_mean.csv",
        index_col=[0, 1],
        keep_default_na=False,
    )
    by_key = {(r.data.tags["method"], r.data.tags["category"]): r for r in good}
    for (m, _p), row in table.iterrows():
        if m == "boom":
            assert row["pushpins"] == "FAILED"
            continue
        vals = [
            by_key[(m, c)].data.metrics["image_auroc_mean"] for c in ("flat_connector", "pushpins")
        ]
        assert float(row["flat_connector"]) == pytest.approx(vals[0])
        assert float(row["Average"]) == pytest.approx(sum(vals) / 2)
    assert "\\begin{tabular}" in (tmp_path / "reports" / "summary.tex").read_text()

    # `orchestrate report` re-creates the same table from MLflow alone
    again_dir = tmp_path / "again"
    code = main(
        ["report", "--experiment", "e2e", "--tracking-uri", uri, "--output-dir", str(again_dir)]
    )
    assert code == 0
    again = pd.read_csv(
        again_dir / "summary_image_auroc_mean.csv", index_col=[0, 1], keep_default_na=False
    )
    pd.testing.assert_frame_equal(again, table)

    # a resume runs only what did not finish (boom, failing again), reusing the parent
    capsys.readouterr()
    assert main([*argv, "--resume", "--retries", "0"]) == 1
    assert "resume: 4 of 6 trials already finished, running 2" in capsys.readouterr().out
    runs2 = _children(client, exp.experiment_id, parent.info.run_id)
    assert len(runs2) == 10
    assert {r.info.run_id for r in runs2 if r.data.tags["method"] != "boom"} == {
        r.info.run_id for r in good
    }


def test_dataset_loco_without_data_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_DATA", str(tmp_path / "nodata"))
    code = main(
        [
            "survey",
            "--dataset",
            "loco",
            "--methods",
            "pixelstats",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "MVTec LOCO AD was not found" in err and "mvtec.com" in err


def test_fit_resources_passes_memory_capped_to_the_largest_node():
    """memory_gb reaches Ray as bytes, capped to what one node has (a trial asking more
    would never be placed); no memory_gb asks for none."""
    from orchestrator.scheduling.runner import fit_resources

    cluster = {"CPU": 4.0, "GPU": 0.0, "memory": 8 * 2**30, "node_memory": 2 * 2**30}
    assert fit_resources({"cpu": 1, "memory_gb": 1}, cluster)["memory"] == 2**30
    assert fit_resources({"cpu": 1, "memory_gb": 16}, cluster)["memory"] == 2 * 2**30
    assert "memory" not in fit_resources({"cpu": 1}, cluster)
    assert fit_resources({"cpu": 8, "gpu": 1}, cluster) == {"cpu": 4.0, "gpu": 0.0}


def test_trial_memory_reaches_ray(ray_cluster):
    """A trial's memory_gb is what Ray assigns it (and an oversized one still runs)."""
    from orchestrator.scheduling import run_trials

    def assigned(spec):
        import ray

        return {"memory": ray.get_runtime_context().get_assigned_resources().get("memory", 0)}

    small, huge = run_trials(
        [{"i": 0}, {"i": 1}],
        assigned,
        [{"cpu": 1, "memory_gb": 0.25}, {"cpu": 1, "memory_gb": 10_000}],
        progress=False,
    )
    assert small.ok and huge.ok, (small.error, huge.error)
    assert small.result["memory"] == pytest.approx(0.25 * 2**30, rel=1e-3)
    assert 0 < huge.result["memory"] < 10_000 * 2**30
