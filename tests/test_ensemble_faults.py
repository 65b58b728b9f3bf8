"""The ensemble job shares the survey's fault handling (orchestrator.jobs): Ctrl-C ends the
parent KILLED (exit 130) with nothing left RUNNING, and a store deleted mid-run stops the job
with what was done written locally, exit 1 with one line, no new empty store."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator.cli import main
from tests.conftest import make_loco
from tests.test_survey_faults import FAULTY

REGISTRY = """
methods:
  faulty:
    adapter: faulty_adapter:Faulty
    resources: {gpu: 0, cpu: 1, memory_gb: 1}
    default: false
  px:
    adapter: adapters.pixelstats:PixelStats
    resources: {gpu: 0, cpu: 1, memory_gb: 1}
    default: false
"""


@pytest.fixture
def setup(tmp_path):
    make_loco(tmp_path / "data")
    (tmp_path / "faulty_adapter.py").write_text(FAULTY)
    (tmp_path / "reg.yaml").write_text(REGISTRY)
    return tmp_path


def _argv(t: Path, fault: str, seeds: str, *extra: str) -> list[str]:
    return [
        "ensemble", "--members", "faulty,px", "--dataset", str(t / "data"),
        "--registry", str(t / "reg.yaml"), "--tracking-uri", f"sqlite:///{t}/mlflow.db",
        "--seeds", seeds, "--in-process", "--profile", "quick",
        "--set", f"faulty.fault={fault}", "--set", "ensemble.epochs=1",
        "--set", "ensemble.hidden=8", *extra,
    ]  # fmt: skip


def _runs(t: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{t}/mlflow.db")
    exp = client.get_experiment_by_name("ensemble")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orchestrator.role") == "ensemble"]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, kids


def test_store_deleted_mid_ensemble_stops_and_keeps_rows(setup, capsys):
    """seed 1's member fit deletes the store: the rest is not run, the rows are written to
    --output-dir, exit 1 with one line; the store is not re-created."""
    t = setup
    db = t / "mlflow.db"
    code = main(
        _argv(t, "1@delete", "0,1,2", "--set", f"faulty.fault_arg={db}",
              "--output-dir", str(t / "summary"))
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: the MLflow store") and "deleted or replaced" in last, last
    assert "stopped scheduling" in last and str(t / "summary") in last
    assert not db.exists(), "a new empty store was created"
    rows = pd.read_csv(t / "summary" / "trials.csv")
    failed = rows[rows["status"] == "failed"]
    # faulty seed 1 lost the store; what came after it was never run
    assert "deleted or replaced" in failed[failed["seed"] == 1]["error"].iloc[0]
    assert (failed["error"] == "not run").sum() >= 1
    assert (t / "summary" / "comparison.md").exists()


def test_interrupt_mid_ensemble_kills_parent(setup):
    """Ctrl-C while a member fits: the parent ends KILLED, nothing is left RUNNING, exit 130
    (also when the interrupt lands in a finalizer, which Python drops: the runner stops
    before the next trial)."""
    t = setup
    argv = _argv(t, "all@sleep", "0,1,2", "--set", "faulty.fault_arg=6")
    code = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], cwd=t, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                _, kids = _runs(t)
            except Exception:  # noqa: BLE001 - the store is being created
                continue
            states = {r.info.status for r in kids}
            if {"FINISHED", "RUNNING"} <= states:  # one fit done, the next one running
                break
        else:
            pytest.fail("no member fit finished within 180 s")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: ensemble run" in out
    (parent,), kids = _runs(t)
    assert parent.info.status == "KILLED"
    assert not [r for r in kids if r.info.status == "RUNNING"]
