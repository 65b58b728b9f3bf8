"""Resume after a killed survey, and a survey against a real `mlflow server` (both start
their own processes: heavy)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.paths import REPO_ROOT

SLOW = """
import os
import time

from adapters.pixelstats import PixelStats


class SlowPix(PixelStats):
    name = "slowpix"

    def _fit(self, train):
        time.sleep(float(os.environ.get("SLOWPIX_SLEEP", "0")))
        super()._fit(train)
"""

REGISTRY = """
methods:
  slowpix:
    adapter: slowpix_adapter:SlowPix
    params: {grid: [16, 16], smoothing_sigma: 1.0, eps: 0.01, seed: 0}
    resources: {gpu: 0, cpu: 1, memory_gb: 1}
    default: false
"""


def _survey_cmd(data: Path, registry: Path, uri: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orchestrator",
        "survey",
        "--dataset",
        str(data),
        "--methods",
        "pixelstats,slowpix",
        "--registry",
        str(registry),
        "--tracking-uri",
        uri,
        "--experiment",
        "resume",
        "--max-concurrent",
        "1",
        "--num-cpus",
        "2",
        *extra,
    ]


def _runs(client: MlflowClient, method: str):
    exp = client.get_experiment_by_name("resume")
    return client.search_runs([exp.experiment_id], f"tags.method = '{method}'")


@pytest.mark.heavy
def test_kill_then_resume(tiny_synthetic, tmp_path):
    (tmp_path / "slowpix_adapter.py").write_text(textwrap.dedent(SLOW))
    registry = tmp_path / "reg.yaml"
    registry.write_text(REGISTRY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "SLOWPIX_SLEEP": "600"}
    proc = subprocess.Popen(
        _survey_cmd(tiny_synthetic, registry, uri),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = MlflowClient(uri)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait: pixelstats done, slowpix started
            time.sleep(2)
            if (
                not (tmp_path / "mlflow.db").exists()
                or client.get_experiment_by_name("resume") is None
            ):
                continue
            done = [r for r in _runs(client, "pixelstats") if r.info.status == "FINISHED"]
            if len(done) == 2 and _runs(client, "slowpix"):
                break
        else:
            pytest.fail("the survey did not get to the slow trials in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the survey and the Ray it started
        proc.wait()
    first = {r.info.run_id for r in _runs(client, "pixelstats")}
    assert len(first) == 2
    assert all(r.info.status == "RUNNING" for r in _runs(client, "slowpix"))

    env["SLOWPIX_SLEEP"] = "0"
    res = subprocess.run(
        _survey_cmd(tiny_synthetic, registry, uri, "--resume"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resume: 2 of 4 trials already finished, running 2" in res.stdout
    assert {r.info.run_id for r in _runs(client, "pixelstats")} == first  # not re-run
    slow = _runs(client, "slowpix")
    assert sorted(r.data.tags["category"] for r in slow if r.info.status == "FINISHED") == [
        "flat_connector",
        "pushpins",
    ]
    parents = client.search_runs(
        [client.get_experiment_by_name("resume").experiment_id],
        "tags.`orchestrator.role` = 'survey'",
    )
    assert len(parents) == 1  # the same parent run was continued
    assert "slowpix" in res.stdout and "pixelstats" in res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.heavy
def test_survey_against_mlflow_server(tiny_synthetic, tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mlflow server did not start")
                time.sleep(1)
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "survey",
                "--dataset",
                str(tiny_synthetic),
                "--categories",
                "pushpins",
                "--methods",
                "pixelstats",
                "--tracking-uri",
                uri,
                "--experiment",
                "served",
                "--num-cpus",
                "2",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("served")
        runs = client.search_runs([exp.experiment_id], "tags.method = 'pixelstats'")
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert "image_auroc_mean" in runs[0].data.metrics
        arts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
        assert {"scores.csv", "roc.png", "model"} <= arts
        assert any((tmp_path / "artifacts").rglob("scores.csv"))  # proxied to the server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
