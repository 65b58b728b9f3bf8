"""Faults during a survey lose nothing: a dying worker, a trial past --trial-timeout, a
deterministic error (never retried), Ctrl-C (parent KILLED, exit 130, --resume), and the
MLflow store deleted or frozen mid-run (scheduling stops, finished figures kept locally)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from orchestrator.cli import main
from tests.conftest import make_loco

#: a PixelStats whose fit misbehaves as told, for one seed (fault_seed) or all (-1)
FAULTY = textwrap.dedent("""
    import os
    import sqlite3
    import time

    from adapters.pixelstats import PixelStats
    from orchestrator.errors import UserError

    _HELD = []


    class Faulty(PixelStats):
        name = "faulty"
        default_config = {**PixelStats.default_config, "fault": "", "fault_seed": -1,
                          "fault_arg": None}

        def _fit(self, train):
            faults = dict(f.split("@") for f in self.config["fault"].split(",") if f)
            what = faults.get(str(self.config["seed"])) or faults.get("all", "")
            arg = self.config["fault_arg"]
            if what == "exit":
                os._exit(3)
            if what == "hang":  # Python code: interrupted at the timeout
                while True:
                    time.sleep(0.05)
            if what == "block":  # one blocking call: only the worker's exit ends it
                time.sleep(3600)
            if what == "config":
                raise UserError("a deterministic configuration error")
            if what == "sleep":
                time.sleep(float(arg))
            if what == "delete":
                os.unlink(arg)
            if what == "lock":
                con = sqlite3.connect(arg, isolation_level=None)
                con.execute("BEGIN EXCLUSIVE")
                _HELD.append(con)
            return super()._fit(train)
""")

REGISTRY = textwrap.dedent("""
    methods:
      faulty:
        adapter: faulty_adapter:Faulty
        resources: {gpu: 0, cpu: 1, memory_gb: 1}
        default: false
""")


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    make_loco(data)
    (tmp_path / "faulty_adapter.py").write_text(FAULTY)
    (tmp_path / "reg.yaml").write_text(REGISTRY)
    return tmp_path


def _argv(t: Path, fault: str, seeds: str, *extra: str) -> list[str]:
    return [
        "survey", "--dataset", str(t / "data"), "--registry", str(t / "reg.yaml"),
        "--methods", "faulty", "--tracking-uri", f"sqlite:///{t}/mlflow.db",
        "--seeds", seeds, "--max-concurrent", "1", "--num-cpus", "1",
        "--set", f"faulty.fault={fault}", *extra,
    ]  # fmt: skip


def _children(t: Path, experiment: str = "survey"):
    client = MlflowClient(tracking_uri=f"sqlite:///{t}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orchestrator.role") == "survey"]
    kids = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, kids


def _by_seed(kids) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in kids:
        out.setdefault(r.data.tags["seed"], []).append(r)
    return out


def test_dead_worker_timeout_and_config_errors(setup, capsys, monkeypatch):
    """seed 1's worker dies (retried, dies again), seed 2 hangs past --trial-timeout and
    seed 3 raises a configuration error (neither retried), seed 4 blocks in one call past the
    timeout (its worker exits; the retry fails at once as timed out); seed 0 finishes;
    nothing is left RUNNING and the parent ends FINISHED."""
    t = setup
    monkeypatch.setenv("ORCHESTRATOR_TIMEOUT_GRACE", "5")
    code = main(
        _argv(t, "1@exit,2@hang,3@config,4@block", "0,1,2,3,4", "--retries", "1",
              "--trial-timeout", "30")
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    (parent,), kids = _children(t)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["failed_trials"] == "4"
    seeds = _by_seed(kids)
    assert [r.info.status for r in seeds["0"]] == ["FINISHED"]
    assert len(seeds["1"]) == 2  # a crash is retried
    assert {r.info.status for r in seeds["1"]} == {"FAILED"}
    assert all("worker died" in r.data.tags["error"] for r in seeds["1"])
    assert len(seeds["2"]) == 1 and seeds["2"][0].info.status == "FAILED"  # not retried
    assert "--trial-timeout (30 s)" in seeds["2"][0].data.tags["error"]
    assert len(seeds["3"]) == 1 and seeds["3"][0].info.status == "FAILED"  # not retried
    assert "deterministic configuration error" in seeds["3"][0].data.tags["error"]
    assert len(seeds["4"]) == 1 and seeds["4"][0].info.status == "FAILED"  # retry: no re-run
    assert out.count("TrialTimeout: the trial ran past --trial-timeout (30 s)") == 2
    assert "4 trial(s) failed" in out


@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_kills_parent_and_resume_finishes(setup, sig, rc):
    """Ctrl-C (and SIGTERM) mid-survey: running runs and the parent end KILLED, exit 130
    (143); --resume runs only what is left (checked after Ctrl-C)."""
    t = setup
    argv = _argv(t, "all@sleep", "0,1,2,3", "--set", "faulty.fault_arg=8")  # a wide window
    code = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], cwd=t, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(1)
            if (t / "mlflow.db").exists():
                try:
                    _, kids = _children(t)
                except Exception:  # noqa: BLE001 - the store is being created
                    continue
                if any(r.info.status == "FINISHED" for r in kids):
                    break
        else:
            pytest.fail("no trial finished within 240 s")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == rc, err[-2000:]
    assert ("interrupted" if sig == signal.SIGINT else "terminated") in err
    (parent,), kids = _children(t)
    assert parent.info.status == "KILLED"
    assert not [r for r in kids if r.info.status == "RUNNING"]
    finished = sum(r.info.status == "FINISHED" for r in kids)
    assert 1 <= finished < 4
    if sig != signal.SIGINT:
        return
    code2 = subprocess.run(
        [sys.executable, "-c", code, *argv, "--resume"], cwd=t, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert code2.returncode == 0, code2.stderr[-2000:]
    assert f"resume: {finished} of 4 trials already finished" in code2.stdout
    (parent,), kids = _children(t)
    assert parent.info.status == "FINISHED"
    assert sum(r.info.status == "FINISHED" for r in kids) == 4


@pytest.mark.parametrize("fault", ["delete", "lock"])
def test_store_lost_mid_survey_keeps_finished_figures(setup, capsys, fault):
    """seed 1's fit deletes (or locks) the sqlite store: scheduling stops, seed 0's figures
    are written to --output-dir, exit 1 with one line; no new empty store appears."""
    t = setup
    db = t / "mlflow.db"
    code = main(
        _argv(t, f"1@{fault}", "0,1,2", "--set", f"faulty.fault_arg={db}",
              "--output-dir", str(t / "summary"))
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: the MLflow store"), err[-2000:]
    assert "stopped scheduling" in last and "1 finished trial(s)" in last
    assert str(t / "summary") in last
    rows = pd.read_csv(t / "summary" / "trials.csv")
    done = rows[rows["status"] == "done"]
    assert list(done["seed"]) == [0] and done["image_auroc"].notna().all()
    assert list(rows["status"]) == ["done", "failed", "failed"]
    assert rows["error"].iloc[2] == "not run"  # scheduling stopped
    if fault == "delete":
        assert not db.exists(), "a new empty store was created"
    else:
        (parent,), kids = _children(t)
        assert not [r for r in kids if r.data.tags.get("seed") == "2"], "scheduling went on"
        assert os.access(db, os.R_OK)
