"""Tracking helpers against a real local MLflow store (SQLite in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.errors import UserError
from orchestrator.profiles import choose_device, choose_profile
from orchestrator.tracking import (
    finished_trials,
    get_experiment_id,
    open_child_run,
    project_commit,
    resolve_tracking_uri,
    start_parent_run,
    trial_key,
)


def test_resolve_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(f"sqlite:///{tmp_path}/x.db") == f"sqlite:///{tmp_path}/x.db"
    assert resolve_tracking_uri("http://h:5000") == "http://h:5000"
    with pytest.raises(UserError, match="retired file store"):
        resolve_tracking_uri("runs")  # MLflow 3 refuses a plain folder
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # ... unless told to take it
    assert resolve_tracking_uri("runs") == (tmp_path / "runs").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None) == "http://env:5000"
    assert resolve_tracking_uri("http://flag:5000") == "http://flag:5000"


def test_reading_never_creates_a_store(tmp_path):
    with pytest.raises(UserError, match="no MLflow store"):
        resolve_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db", must_exist=True)
    assert not (tmp_path / "mlflow.db").exists()


def test_trial_key_stable_and_sensitive():
    a = trial_key(method="m", config={"x": 1, "y": [1, 2]}, fingerprint="f")
    assert a == trial_key(fingerprint="f", config={"y": [1, 2], "x": 1}, method="m")
    assert a != trial_key(method="m", config={"x": 2, "y": [1, 2]}, fingerprint="f")


def test_project_commit(tmp_path):
    assert len(project_commit()) in (40, len("unknown"))
    assert project_commit(tmp_path) == "unknown"


def test_child_runs_parent_and_resume(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    exp = get_experiment_id(uri, "t")
    assert get_experiment_id(uri, "t") == exp
    parent, reused = start_parent_run(uri, exp, {"profile": "quick"})
    assert not reused
    with open_child_run(uri, exp, parent, "ok", {"trial_key": "k1"}) as run:
        run.log_params({"a": 1, "nested": {"b": [1, 2]}})
        run.log_metrics({"auroc": 0.75, "nan_is_dropped": float("nan")})
    with pytest.raises(ValueError), open_child_run(uri, exp, parent, "bad", {"trial_key": "k2"}):
        raise ValueError("broken trial")
    open_child_run(uri, exp, parent, "killed", {"trial_key": "k3"})  # left RUNNING
    client = MlflowClient(uri)
    ok = client.get_run(run.run_id)
    assert ok.info.status == "FINISHED" and ok.data.metrics == {"auroc": 0.75}
    assert ok.data.params == {"a": "1", "nested.b": "[1, 2]"}
    assert ok.data.tags["mlflow.parentRunId"] == parent
    bad = client.search_runs([exp], "tags.trial_key = 'k2'")[0]
    assert bad.info.status == "FAILED" and bad.data.tags["error"] == "ValueError: broken trial"
    err = Path(client.download_artifacts(bad.info.run_id, "error.txt", str(tmp_path)))
    assert "raise ValueError" in err.read_text()
    assert set(finished_trials(uri, exp, parent)) == {"k1"}  # FAILED and RUNNING don't count
    again, reused = start_parent_run(uri, exp, {}, resume=True)
    assert reused and again == parent
    assert client.get_run(parent).info.status == "RUNNING"


def test_profiles_and_devices():
    assert choose_profile(None, 0)[0] == "quick"
    assert "no GPU" in choose_profile(None, 0)[1]
    assert choose_profile(None, 2)[0] == "paper"
    assert choose_profile("paper", 0)[0] == "paper"
    assert choose_device("auto", 0) == "cpu" and choose_device("auto", 1) == "cuda"
    with pytest.raises(UserError, match="no GPU"):
        choose_device("cuda", 0)


def test_child_run_never_creates_a_store_deleted_meanwhile(tmp_path):
    from orchestrator.tracking.trials import ChildRun, StoreLostError, store_identity

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = MlflowClient(tracking_uri=uri).create_experiment("e")
    ident = store_identity(uri)
    with ChildRun(uri, exp, None, "first", store_id=ident) as run:
        run.log_metrics({"m": 1.0})
    (tmp_path / "mlflow.db").unlink()
    with pytest.raises(StoreLostError, match="deleted or replaced"):
        ChildRun(uri, exp, None, "second", store_id=ident)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_methods_own_sqlite_error_is_not_a_lost_store(tmp_path):
    """Only MLflow's own calls are read as store errors: a trial raising a sqlite-looking
    error of its own fails as itself."""
    from orchestrator.tracking.trials import ChildRun, StoreLostError, store_identity

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = MlflowClient(tracking_uri=uri).create_experiment("e")
    with pytest.raises(RuntimeError, match="no such table"):
        with ChildRun(uri, exp, None, "t", store_id=store_identity(uri)):
            raise RuntimeError("no such table: my_features")
    with pytest.raises(StoreLostError):
        with ChildRun(uri, exp, None, "t2", store_id=store_identity(uri)):
            (tmp_path / "mlflow.db").unlink()
            raise RuntimeError("anything")
    assert not (tmp_path / "mlflow.db").exists()  # failing the run did not re-create it


def test_artifacts_land_beside_the_store_not_in_the_working_folder(tmp_path, monkeypatch):
    """A new experiment of a sqlite store keeps its artifacts in mlartifacts/ beside the
    database, whatever folder the job runs in; --artifact-root picks another place."""
    from mlflow import MlflowClient

    from orchestrator.tracking import get_experiment_id

    store = tmp_path / "store"
    store.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = get_experiment_id(uri, "my survey")
    with open_child_run(uri, exp, None, "r", {}) as run:
        (tmp_path / "a.txt").write_text("x")
        run.client.log_artifact(run.run_id, str(tmp_path / "a.txt"))
    where = client.get_experiment(exp).artifact_location
    assert where == (store / "mlartifacts" / "my_survey").as_uri()
    assert list((store / "mlartifacts").rglob("a.txt")), "artifact not beside the store"
    assert not (elsewhere / "mlruns").exists() and not any(elsewhere.iterdir())
    other = get_experiment_id(uri, "other", artifact_root=str(tmp_path / "art"))
    assert client.get_experiment(other).artifact_location == (tmp_path / "art" / "other").as_uri()
