"""The team set-up (scripts/services.sh): PostgreSQL + `mlflow server` with proxied
artifacts on loopback, a survey logging to it, and the server restarted in the middle of the
survey: every finished trial is still there and the survey completes."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from orchestrator.survey import SurveyOptions, run_survey

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "services.sh"


def _why_not() -> str | None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not shutil.which("initdb"):
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[server]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def services():
    why = _why_not()
    if why:
        if os.environ.get("ORCHESTRATOR_REQUIRE_SERVICES"):
            pytest.fail(why)
        pytest.skip(why)
    # a folder the postgres user can reach when the tests run as root (pytest's own tmp
    # folders are closed to other users)
    root = Path(tempfile.mkdtemp(prefix="services-"))
    root.chmod(0o755)
    env = {
        **os.environ,
        "SERVICES_DIR": str(root / "svc"),
        "PG_PORT": str(_free_port()),
        "MLFLOW_PORT": str(_free_port()),
        "MLFLOW": str(REPO / ".venv" / "bin" / "mlflow")
        if (REPO / ".venv" / "bin" / "mlflow").exists()
        else "mlflow",
    }

    def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    sh("up")
    try:
        yield {"sh": sh, "uri": sh("uri").stdout.strip(), "dir": root / "svc"}
    finally:
        sh("down", check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_services_are_on_loopback_with_postgres_behind_mlflow(services):
    status = services["sh"]("status")
    assert "postgres: up on 127.0.0.1:" in status.stdout
    assert "mlflow: up on http://127.0.0.1:" in status.stdout
    # postgres keeps its data as the non-root user, with a password nobody else can read
    pw = services["dir"] / "pg-password"
    assert oct(pw.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:
        import pwd

        assert pwd.getpwuid((services["dir"] / "pgdata").stat().st_uid).pw_name == "postgres"
    # the backend store is PostgreSQL: the server's process was given a postgresql URI
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert pw.read_text().strip() not in ps  # never on a command line


def test_survey_survives_a_server_restart(services, tiny_synthetic):
    from mlflow import MlflowClient

    uri = services["uri"]
    client = MlflowClient(tracking_uri=uri)
    log: list[str] = []
    restarted = threading.Event()

    def restart_after_first_trial() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name("restart")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            done = [r for r in runs if r.info.status == "FINISHED" and r.info.run_name != "survey"]
            if done:
                log.append(f"before restart: {len(done)} finished trial(s)")
                services["sh"]("restart-mlflow")
                log.append("mlflow server restarted")
                restarted.set()
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=restart_after_first_trial, daemon=True)
    watcher.start()
    res = run_survey(
        SurveyOptions(
            dataset=str(tiny_synthetic),
            methods=["pixelstats"],
            seeds=[0, 1, 2],
            tracking_uri=uri,
            experiment="restart",
            in_process=True,
        ),
        out=io.StringIO(),
    )
    watcher.join(timeout=60)
    assert restarted.is_set(), "the server was never restarted during the survey"
    trials = [
        r for r in client.search_runs([res.experiment_id]) if r.info.run_id != res.parent_run_id
    ]
    finished = sum(r.info.status == "FINISHED" for r in trials)
    log.append(f"after: {len(trials)} trial(s), {finished} FINISHED")
    print("\n".join(log))
    assert res.failed == 0 and len(trials) == 6
    assert all(r.info.status == "FINISHED" for r in trials)
    assert client.get_run(res.parent_run_id).info.status == "FINISHED"
    # artifacts went through the server into its artifact folder
    arts = {a.path for a in client.list_artifacts(trials[0].info.run_id)}
    assert {"scores.csv", "model"} <= arts
    assert any((services["dir"] / "artifacts").rglob("scores.csv"))
