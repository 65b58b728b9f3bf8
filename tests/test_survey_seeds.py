"""`orchestrate survey --seeds`: one trial per seed, mean ± std tables, resume by seed, and
determinism: the same trial with the same seed gives identical metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from orchestrator.cli import main
from orchestrator.scheduling import ray_session

TINY = {
    "patchcore": {"backbone": "resnet18", "pretrained": False, "layers": ["layer2", "layer3"],
                  "image_size": [48, 64], "pretrain_embed_dimension": 64,
                  "target_embed_dimension": 64, "batch_size": 4},
    "simplenet": {"backbone": "resnet18", "pretrained": False, "layers": ["layer2", "layer3"],
                  "image_size": [48, 64], "pretrain_embed_dimension": 64,
                  "target_embed_dimension": 64, "meta_epochs": 3, "gan_epochs": 2,
                  "dsc_hidden": 32, "batch_size": 4},
}  # fmt: skip
TIMING = ("fit_seconds", "predict_seconds", "peak_memory_mb")


@pytest.fixture(scope="module")
def ray_cluster():
    with ray_session(num_cpus=2) as res:
        yield res


def _survey(dataset, registry, uri, experiment, seeds, out=None, resume=False) -> int:
    argv = ["survey", "--dataset", str(dataset), "--categories", "pushpins",
            "--methods", "patchcore,simplenet", "--registry", str(registry),
            "--tracking-uri", uri, "--experiment", experiment, "--seeds", seeds]  # fmt: skip
    if out:
        argv += ["--output-dir", str(out)]
    if resume:
        argv.append("--resume")
    return main(argv)


def _metrics(uri: str, experiment: str) -> dict[tuple[str, int], dict[str, float]]:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.method != ''")
    return {
        (r.data.tags["method"], int(r.data.tags["seed"])): {
            k: v for k, v in r.data.metrics.items() if k not in TIMING
        }
        for r in runs
        if r.info.status == "FINISHED"
    }


def test_seeds_tables_resume_and_determinism(tiny_synthetic, tmp_path, ray_cluster, capsys):
    registry = tmp_path / "tiny.yaml"
    registry.write_text(
        yaml.safe_dump({"methods": {m: {"profiles": {"quick": p}} for m, p in TINY.items()}})
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "reports"
    assert _survey(tiny_synthetic, registry, uri, "seeds", "0,1", out) == 0
    printed = capsys.readouterr().out
    assert "x 2 seeds = 4 trials" in printed and "(n=2)" in printed and " ± " in printed
    a = _metrics(uri, "seeds")
    assert sorted(a) == [("patchcore", 0), ("patchcore", 1), ("simplenet", 0), ("simplenet", 1)]
    # the seed reaches the method: SimpleNet's random parts differ between seeds
    assert a[("simplenet", 0)] != a[("simplenet", 1)]

    # the logged table's arithmetic: mean, sample std and n over the two seeds
    stats = pd.read_csv(out / "summary_stats.csv")
    for method in ("patchcore", "simplenet"):
        pick = (stats.method == method) & (stats.category == "pushpins")
        row = stats[pick & (stats.metric == "pixel_auroc")].iloc[0]
        vals = [a[(method, s)]["pixel_auroc"] for s in (0, 1)]
        assert row["n"] == 2
        assert row["mean"] == pytest.approx(np.mean(vals))
        assert row["std"] == pytest.approx(np.std(vals, ddof=1))

    # resume knows seeds: both seeds are done, a third one is new
    assert _survey(tiny_synthetic, registry, uri, "seeds", "0,1,2", resume=True) == 0
    assert "resume: 4 of 6 trials already finished, running 2" in capsys.readouterr().out
    assert len(_metrics(uri, "seeds")) == 6

    # determinism: the same trials again, in another experiment, give identical metrics
    assert _survey(tiny_synthetic, registry, uri, "again", "1") == 0
    b = _metrics(uri, "again")
    assert sorted(b) == [("patchcore", 1), ("simplenet", 1)]
    for key in b:
        assert b[key] == a[key], key
