"""The MLflow UI over a finished tiny survey, as a user's browser shows it: a real `mlflow ui` on
127.0.0.1 and headless Chromium from the system's packages, driven by Playwright (its own
browser download is not used). The browser test skips without Chromium or Playwright, and
fails instead when ORCHESTRATOR_REQUIRE_BROWSER is set (as `.ci/run` does).
ORCHESTRATOR_UI_SCREENSHOT=<file.png> keeps a screenshot of the runs page."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.cli import main
from orchestrator.tracking.store import get_experiment_id
from orchestrator.tracking.ui import (
    CLASSIC_EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    RUNS_VIEW_KEY,
    RUNS_VIEW_METRICS,
    SAVED_VIEW_TAG_PREFIX,
    run_page_url,
    runs_page_url,
)

REQUIRE = "ORCHESTRATOR_REQUIRE_BROWSER"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEW_TAG = SAVED_VIEW_TAG_PREFIX + RUNS_VIEW_KEY
#: Side-bar entries only the GenAI pages have
GENAI_ONLY = ("Sessions", "Judges", "Evaluation runs", "Agent versions")


def test_experiments_get_the_ui_tags_and_keep_a_users_own(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    tags = client.get_experiment(get_experiment_id(uri, "new")).tags
    assert tags[EXPERIMENT_KIND_TAG] == CLASSIC_EXPERIMENT_KIND
    view = json.loads(tags[VIEW_TAG])
    state = json.loads(view["state"])
    assert state["orderByKey"] == "metrics.`image_auroc`" and state["orderByAsc"] is False
    assert state["selectedColumns"][: len(RUNS_VIEW_METRICS)] == state["columnOrder"]
    assert "metrics.`image_auroc`" in state["columnOrder"]
    assert isinstance(view["createdAt"], int) and view["name"]

    # made before this project tagged its experiments: tagged when reused
    old = client.create_experiment("old")
    assert get_experiment_id(uri, "old") == old
    assert client.get_experiment(old).tags.keys() >= {EXPERIMENT_KIND_TAG, VIEW_TAG}
    # a user's own choices stay
    mine = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "regression"})
    client.set_experiment_tag(mine, VIEW_TAG, '{"mine": 1}')
    get_experiment_id(uri, "mine")
    tags = client.get_experiment(mine).tags
    assert tags[EXPERIMENT_KIND_TAG] == "regression" and tags[VIEW_TAG] == '{"mine": 1}'
    assert get_experiment_id(uri, "absent", create=False) is None


def test_ui_urls():
    assert runs_page_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs"
        f"?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_KEY}"
    )
    assert run_page_url("http://h:1/prefix", "7", "abc") == (
        "http://h:1/prefix/#/experiments/7/runs/abc?workflowType=machine_learning"
    )


def _chromium() -> str:
    """The system's Chromium with Playwright importable; else skip (fail under REQUIRE)."""
    why = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "playwright is not installed (pip install -e '.[dev]')"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if why is None and exe is None:
        why = "no chromium on PATH (apt-get install chromium)"
    if why is not None:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{why}, and {REQUIRE} is set")
        pytest.skip(why)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(uri: str, log: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """`mlflow ui` over ``uri`` started on a free port of 127.0.0.1: its base URL and a
    function that waits until it answers; ended, with its workers, on exit."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,  # whatever it writes beside itself
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def wait_ready(timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            tail = log.read_text(errors="replace")[-2000:]
            assert proc.poll() is None, f"mlflow ui exited ({proc.returncode}):\n{tail}"
            assert time.monotonic() < deadline, f"mlflow ui not up in {timeout:g} s:\n{tail}"
            time.sleep(0.3)

    try:
        yield base, wait_ready
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)  # its own session: the server and its workers
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def test_runs_page_shows_the_child_runs_with_image_auroc(tiny_synthetic, tmp_path, capsys):
    """The printed runs page opens on the classic runs table (not the GenAI pages), listing
    the trials by name with their image AUROC, best first."""
    exe = _chromium()
    from playwright.sync_api import expect, sync_playwright

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # the store's tables first: the server starts beside the survey
    argv = ["survey", "--dataset", str(tiny_synthetic), "--methods", "pixelstats"]
    argv += ["--tracking-uri", uri, "--experiment", "ui", "--in-process", "--no-validate"]
    with mlflow_ui(uri, tmp_path / "ui.log") as (base, wait_ready), sync_playwright() as pw:
        assert main(argv) == 0, capsys.readouterr().err
        exp = client.get_experiment_by_name("ui")
        assert exp.tags[EXPERIMENT_KIND_TAG] == CLASSIC_EXPERIMENT_KIND and VIEW_TAG in exp.tags
        runs = client.search_runs([exp.experiment_id])
        children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert sorted(children) == ["pixelstats/flat_connector", "pixelstats/pushpins"]
        auroc = {n: r.data.metrics["image_auroc"] for n, r in children.items()}
        wait_ready()
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(runs_page_url(base, exp.experiment_id))
            grid = page.locator(".ag-center-cols-container")
            try:
                expect(grid.locator(f'[row-id="{parent.info.run_id}"]')).to_be_visible(
                    timeout=20_000
                )
                expect(page.get_by_text("pixelstats/pushpins", exact=True)).to_be_visible(
                    timeout=5_000
                )
            finally:
                if os.environ.get("ORCHESTRATOR_UI_SCREENSHOT"):
                    page.screenshot(path=os.environ["ORCHESTRATOR_UI_SCREENSHOT"])
            # the model-training pages, not the GenAI ones (traces, sessions, judges ...)
            assert f"/experiments/{exp.experiment_id}/runs?" in page.url
            expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
            for name in GENAI_ONLY:
                expect(page.get_by_text(name, exact=True)).to_have_count(0)
            # every trial by name, not folded under the survey run, with its image AUROC
            col = "metrics.`image_auroc`"
            expect(page.locator(f'.ag-header-cell[col-id="{col}"]')).to_contain_text("image_auroc")
            shown = {}
            for name, run in children.items():
                expect(page.get_by_text(name, exact=True)).to_be_visible()
                row = grid.locator(f'[row-id="{run.info.run_id}"]')
                shown[name] = (
                    int(row.get_attribute("row-index")),
                    float(row.locator(f'[col-id="{col}"]').inner_text()),
                )
                assert shown[name][1] == pytest.approx(auroc[name], abs=1e-9)
            best_first = sorted(auroc, key=auroc.get, reverse=True)
            assert sorted(shown, key=lambda n: shown[n][0]) == best_first  # sorted by it

            # the printed link of the survey run: its page among the runs, not evaluations
            page.goto(run_page_url(base, exp.experiment_id, parent.info.run_id))
            expect(page.get_by_role("heading", name=parent.info.run_name)).to_be_visible(
                timeout=20_000
            )
            assert "workflowType=machine_learning" in page.url
            for name in GENAI_ONLY:
                expect(page.get_by_text(name, exact=True)).to_have_count(0)
        finally:
            browser.close()
