"""Training curves: every training loop reports its epochs, a probe changes nothing, and a
survey logs the curves as step metrics and draws them on its parent run."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from mlflow import MlflowClient

from adapters.conformance import make_tiny_category
from adapters.training import TrainingMonitor, probe_epochs
from orchestrator.cli import main
from orchestrator.metrics.image import image_auroc
from tests.test_csflow import TINY as CSFLOW_TINY
from tests.test_draem import TINY as DRAEM_TINY
from tests.test_revdist import TINY as REVDIST_TINY
from tests.test_simplenet import TINY as SIMPLENET_TINY
from tests.upstream import need_checkout

# fewer epochs than the methods' own tests: this checks the loop, not the model
SIMPLENET = SIMPLENET_TINY | {"meta_epochs": 2, "gan_epochs": 2}
ENGINES = {
    "simplenet": ("adapters.simplenet:SimpleNet", SIMPLENET, 4),
    "csflow": ("adapters.csflow:CSFlow", CSFLOW_TINY | {"meta_epochs": 1, "sub_epochs": 3}, 3),
    "draem": ("adapters.draem:DRAEM", DRAEM_TINY | {"iterations_per_epoch": 8, "epochs": 3}, 3),
    "revdist": ("adapters.revdist:RevDist", REVDIST_TINY | {"epochs": 3}, 3),
}


def _adapter(path: str, config: dict, source: str = "native"):
    from orchestrator.registry import import_adapter

    return import_adapter(path)(config, device="cpu", source=source)


@pytest.fixture(scope="module")
def category(tmp_path_factory):
    return make_tiny_category(tmp_path_factory.mktemp("curves"))


def test_probe_schedule_spreads_points_and_waits_for_probeable_epochs():
    assert probe_epochs(12, 4) == 3 and probe_epochs(10, 4) == 3 and probe_epochs(3, 4) == 1
    assert probe_epochs(10, 0) == 0 and probe_epochs(0, 4) == 0
    seen: list[tuple[str, float, int]] = []
    mon = TrainingMonitor(
        log=lambda k, v, s: seen.append((k, v, s)),
        probe=lambda: {"image_auroc": 0.5},
        points=4,
        skip_final=True,
    )
    for e in range(1, 13):
        mon.epoch_end(e, 12, 1.0 / e)
    assert [e for e, _ in mon.probes] == [3, 6, 9]  # 12, the last, is the caller's
    assert [s for k, _, s in seen if k == "train_loss"] == list(range(1, 13))
    # an upstream call that runs 4 epochs at once can be probed only at its end
    mon = TrainingMonitor(probe=lambda: {"x": 1.0}, every=3)
    for e in range(1, 13):
        mon.epoch_end(e, 12, 1.0, can_probe=e % 4 == 0)
    assert [e for e, _ in mon.probes] == [4, 8, 12]
    mon = TrainingMonitor(probe=lambda: {"x": 1.0}, points=0)
    for e in range(1, 5):
        mon.epoch_end(e, 4, float("nan"))
    assert mon.probes == [] and mon.losses == []  # no probes; a NaN loss is not drawn


@pytest.mark.parametrize("method", sorted(ENGINES))
def test_every_training_loop_reports_epochs_and_a_probe_changes_nothing(method, category):
    """Each epoch's loss reaches the monitor; probing the model mid-training (validation
    scores every epoch) leaves the final model bit for bit as without a monitor."""
    path, config, epochs = ENGINES[method]
    train, test = category.split("train"), category.split("test")
    plain = _adapter(path, config).fit(train).predict(test)

    watched = _adapter(path, config)
    y = test.is_anomalous
    probe = lambda: {"image_auroc": image_auroc(watched.scores_while_training(test), y)}  # noqa: E731
    watched.monitor = TrainingMonitor(probe=probe, every=1)
    again = watched.fit(train).predict(test)

    mon = watched.monitor
    assert [e for e, _ in mon.losses] == list(range(1, epochs + 1))
    assert all(np.isfinite(v) and v != 0 for _, v in mon.losses)
    assert [e for e, _ in mon.probes] == list(range(1, epochs + 1))
    assert all(0.0 <= p["image_auroc"] <= 1.0 for _, p in mon.probes)
    np.testing.assert_array_equal(again.image_scores, plain.image_scores)
    np.testing.assert_array_equal(again.anomaly_maps, plain.anomaly_maps)


def test_upstream_simplenet_reports_each_gan_epoch_from_its_logger(category):
    """Upstream SimpleNet runs ``gan_epochs`` epochs per call: its per-batch losses (its own
    logger calls) are split into epochs, probes wait for the end of a call, and the model
    is the same as without a monitor."""
    need_checkout("simplenet")
    path, config = "adapters.simplenet:SimpleNet", SIMPLENET | {"meta_epochs": 3}
    train, test = category.split("train"), category.split("test")
    plain = _adapter(path, config, "upstream").fit(train).predict(test)
    watched = _adapter(path, config, "upstream")
    watched.monitor = TrainingMonitor(
        probe=lambda: {"n": float(len(watched.scores_while_training(test)))}, every=1
    )
    again = watched.fit(train).predict(test)
    mon = watched.monitor
    assert [e for e, _ in mon.losses] == list(range(1, 7))  # 3 calls x 2 gan epochs
    assert len({round(v, 9) for _, v in mon.losses}) > 1  # real per-epoch means, not one value
    assert [e for e, _ in mon.probes] == [2, 4, 6]
    np.testing.assert_array_equal(again.image_scores, plain.image_scores)


REGISTRY = """
methods:
  simplenet_tiny:
    adapter: adapters.simplenet:SimpleNet
    params: {params}
    resources: {{gpu: 0, cpu: 1, memory_gb: 2}}
    default: false
"""


def test_survey_logs_curves_and_draws_them_on_the_parent(tiny_synthetic, tmp_path):
    """An in-process survey: ``train_loss`` per epoch and the validation AUROC at the
    requested points (the last one the trial's validation_image_auroc), a figure and a CSV
    on the parent run, the same files from `orchestrate report`; PixelStats, which does not
    train, has no curve."""
    reg = tmp_path / "reg.yaml"
    params = SIMPLENET | {"meta_epochs": 3, "gan_epochs": 2}
    reg.write_text(textwrap.dedent(REGISTRY).format(params=params))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["survey", "--dataset", str(tiny_synthetic), "--categories", "pushpins"]
    argv += ["--methods", "simplenet_tiny,pixelstats", "--registry", str(reg)]
    argv += ["--in-process", "--source", "native", "--tracking-uri", uri]
    argv += ["--experiment", "curves", "--curve-points", "3"]
    assert main(argv) == 0
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("curves")
    every = client.search_runs([exp.experiment_id])
    runs = {r.data.tags["method"]: r for r in every if "mlflow.parentRunId" in r.data.tags}
    sn = runs["simplenet_tiny"]
    loss = client.get_metric_history(sn.info.run_id, "train_loss")
    assert sorted(m.step for m in loss) == list(range(1, 7))
    auc = sorted(
        client.get_metric_history(sn.info.run_id, "curve_validation_image_auroc"),
        key=lambda m: m.step,
    )
    assert [m.step for m in auc] == [2, 4, 6]
    assert auc[-1].value == pytest.approx(sn.data.metrics["validation_image_auroc"])
    assert not client.get_metric_history(runs["pixelstats"].info.run_id, "train_loss")

    parent = next(
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    )
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/training_curves.png", "summary/training_curves.csv"} <= files
    local = client.download_artifacts(parent.info.run_id, "summary/training_curves.csv", tmp_path)
    import pandas as pd

    points = pd.read_csv(local)
    assert set(points["method"]) == {"simplenet_tiny"}
    assert (points["metric"] == "train_loss").sum() == 6

    out = tmp_path / "report"
    assert main(["report", "--experiment", "curves", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert (out / "training_curves.png").stat().st_size > 10_000
    again = pd.read_csv(out / "training_curves.csv")
    pd.testing.assert_frame_equal(again, points)
