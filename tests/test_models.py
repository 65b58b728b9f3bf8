"""A trial's MLflow Model end to end: saved by a real survey (in-process, pixelstats), loaded
in a fresh process, registered, served by `mlflow models serve`, and used by
`orchestrate predict`, whose maps `orchestrate evaluate` reads back to the trial's metrics."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from orchestrator.calibration import calibrator_from_state, calibrator_state, fit_calibrator
from orchestrator.cli import main
from orchestrator.models import choose_thresholds
from orchestrator.survey import SurveyOptions, run_survey

REPO = Path(__file__).resolve().parents[1]


# --- thresholds and calibration state: no store needed -------------------------------------
def test_image_threshold_is_f1_max_on_validation():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.35, 0.8])
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    maps = np.zeros((6, 4, 4), np.float32)
    masks = np.zeros((6, 4, 4), bool)
    maps[3:, 0, 0], masks[3:, 0, 0] = 5.0, True
    t = choose_thresholds(scores, y, maps, masks)
    # F1 is 1 when exactly the three anomalies are flagged: the lowest of them is the threshold
    assert t.image == pytest.approx(0.35) and t.validation_f1 == pytest.approx(1.0)
    assert t.image_rule == "validation-f1" and t.pixel_rule == "validation-f1"
    assert t.pixel == pytest.approx(5.0)


def test_without_validation_anomalies_the_threshold_is_a_normal_quantile():
    scores = np.linspace(0.0, 1.0, 101)
    maps = np.random.default_rng(0).random((101, 8, 8)).astype(np.float32)
    t = choose_thresholds(scores, np.zeros(101, bool), maps, np.zeros(maps.shape, bool))
    assert t.image == pytest.approx(0.99) and t.image_rule == "normal-quantile-0.99"
    assert t.pixel == pytest.approx(np.quantile(maps, 0.999), rel=1e-5)
    assert t.validation_f1 is None


def test_saved_calibration_predicts_the_same():
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0, 1, 30), rng.normal(3, 1, 30)]
    y = np.r_[np.zeros(30), np.ones(30)].astype(bool)
    cal = fit_calibrator("bounded_sigmoid", s, y)
    back = calibrator_from_state(json.loads(json.dumps(calibrator_state(cal))))
    probe = np.linspace(-4, 7, 50)
    np.testing.assert_allclose(back.predict(probe), cal.predict(probe), rtol=0, atol=0)
    with pytest.raises(ValueError, match="only a fitted bounded_sigmoid"):
        calibrator_state(fit_calibrator("platt", s, y))


# --- one real survey trial shared by the tests below ----------------------------------------
@pytest.fixture(scope="module")
def trial(tmp_path_factory, tiny_synthetic):
    tmp = tmp_path_factory.mktemp("models")
    uri = f"sqlite:///{tmp}/mlflow.db"
    res = run_survey(
        SurveyOptions(
            dataset=str(tiny_synthetic),
            categories=["pushpins"],
            methods=["pixelstats"],
            tracking_uri=uri,
            in_process=True,
            save_maps=True,
        ),
        out=io.StringIO(),
    )
    assert res.failed == 0, res.rows
    client = MlflowClient(tracking_uri=res.tracking_uri)
    (run,) = [
        r
        for r in client.search_runs([res.experiment_id])
        if r.data.tags.get("mlflow.parentRunId") == res.parent_run_id
    ]
    scores = pd.read_csv(client.download_artifacts(run.info.run_id, "scores.csv", str(tmp)))
    return {
        "tmp": tmp,
        "uri": res.tracking_uri,
        "run": run,
        "scores": scores,
        "category": tiny_synthetic / "pushpins",
    }


def _encoded(category: Path, keys: list[str]) -> list[str]:
    return [base64.b64encode((category / f"{k}.png").read_bytes()).decode("ascii") for k in keys]


def test_trial_logs_scores_with_defect_type_and_decision(trial):
    table, m = trial["scores"], trial["run"].data.metrics
    assert list(table.columns) == [
        "key",
        "label",
        "defect_type",
        "score",
        "probability",
        "predicted",
    ]
    assert set(table["predicted"]) <= {"anomalous", "good"}
    flagged = table["score"] >= m["image_threshold"]
    assert (table["predicted"] == np.where(flagged, "anomalous", "good")).all()
    # LOCO defect names from defects_config.json, not the folder names
    logical = table[table["label"] == "logical"]
    assert not logical.empty and not logical["defect_type"].str.endswith("_anomalies").any()
    assert (table[table["label"] == "good"]["defect_type"] == "good").all()
    y = table["label"] != "good"
    tp = (flagged & y).sum()
    assert m["recall_at_threshold"] == pytest.approx(tp / y.sum())


def test_model_loads_in_a_fresh_process_and_scores_like_the_trial(trial):
    table = trial["scores"].head(6)
    payload = {"keys": list(table["key"]), "images": _encoded(trial["category"], table["key"])}
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "p = json.load(sys.stdin)\n"
        f"m = mlflow.pyfunc.load_model('runs:/{trial['run'].info.run_id}/model')\n"
        "out = m.predict(pd.DataFrame({'image': p['images']}), params={'maps': True})\n"
        "print(out.to_json(orient='records'))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": trial["uri"]}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        cwd=trial["tmp"],
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose([r["score"] for r in rows], table["score"], rtol=1e-6)
    np.testing.assert_allclose([r["probability"] for r in rows], table["probability"], rtol=1e-6)
    assert [r["label"] for r in rows] == list(table["predicted"])
    from orchestrator.models.pyfunc import decode_map

    amap = decode_map(rows[0]["anomaly_map"])
    with Image.open(trial["category"] / f"{table['key'][0]}.png") as im:
        assert amap.shape == (im.height, im.width) and amap.dtype == np.float32
    # the model's signature says what it takes and gives
    mlmodel = Path(
        MlflowClient(trial["uri"]).download_artifacts(
            trial["run"].info.run_id, "model/MLmodel", str(trial["tmp"] / "mlmodel")
        )
    ).read_text()
    assert '"name": "image"' in mlmodel and '"name": "probability"' in mlmodel


def test_predict_writes_maps_overlays_and_csv_and_skips_a_bad_image(trial, tmp_path, capsys):
    bad = tmp_path / "in" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    model = f"runs:/{trial['run'].info.run_id}/model"
    test_dir = trial["category"] / "test"
    argv = ["predict", "--model", model, str(test_dir), str(bad), "--out", str(out)]
    code = main([*argv, "--tracking-uri", trial["uri"], "--batch-size", "5"])
    assert code == 1  # one image failed, the rest went on
    assert "broken.png" in capsys.readouterr().err
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image"]) == ["broken.png"]
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == ["image", "score", "probability", "label"]
    table = trial["scores"].set_index("key")
    assert len(preds) == len(table)
    keys = "test/" + preds["image"].str.removesuffix(".png")
    np.testing.assert_allclose(preds["score"], table.loc[keys, "score"], rtol=1e-6)
    assert list(preds["label"]) == list(table.loc[keys, "predicted"])
    overlays = list((out / "overlays").rglob("*.png"))
    assert len(overlays) == len(table)
    # the maps are in the official layout: evaluate reads them back to the trial's metrics
    pixel_auroc = _evaluated(trial, out / "anomaly_maps", tmp_path)["pixel_auroc"]
    assert pixel_auroc == pytest.approx(trial["run"].data.metrics["pixel_auroc"], abs=1e-4)


def test_survey_save_maps_are_the_official_layout(trial, tmp_path):
    client = MlflowClient(trial["uri"])
    local = client.download_artifacts(trial["run"].info.run_id, "anomaly_maps", str(tmp_path))
    pixel_auroc = _evaluated(trial, Path(local), tmp_path)["pixel_auroc"]
    assert pixel_auroc == pytest.approx(trial["run"].data.metrics["pixel_auroc"], abs=1e-4)


def _evaluated(trial, maps: Path, out: Path) -> dict[str, float]:
    """`orchestrate evaluate` of ``maps`` against the trial's category: its extra metrics."""
    root = str(trial["category"].parent)
    argv = ["evaluate", "--dataset-root", root, "--category", "pushpins", "--maps", str(maps)]
    assert main([*argv, "--output-dir", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())["additional"]


def test_predict_refuses_bad_input_before_any_work(trial, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "nope"),
                str(trial["category"]),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "not a folder" in capsys.readouterr().err
    twins = tmp_path / "twins"
    for sub in ("a/good", "b/good"):
        (twins / sub).mkdir(parents=True)
        (twins / sub / "000.png").write_bytes(
            (trial["category"] / "test/good/000.png").read_bytes()
        )
    model = f"runs:/{trial['run'].info.run_id}/model"
    code = main(
        ["predict", "--model", model, str(twins), "--out", str(out), "--tracking-uri", trial["uri"]]
    )
    assert code == 2 and "same map" in capsys.readouterr().err
    assert not out.exists()


def test_register_then_load_the_registered_version(trial, capsys):
    run_id = trial["run"].info.run_id
    assert (
        main(
            [
                "register",
                "--run",
                run_id,
                "--name",
                "pushpins-detector",
                "--tracking-uri",
                trial["uri"],
            ]
        )
        == 0
    )
    assert "models:/pushpins-detector/1" in capsys.readouterr().out
    from orchestrator.models.pyfunc import load_detector

    det = load_detector("models:/pushpins-detector/1", "cpu", trial["uri"])
    table = trial["scores"].head(3)
    found = det.detect([trial["category"] / f"{k}.png" for k in table["key"]])
    np.testing.assert_allclose(found.scores, table["score"], rtol=1e-6)
    assert det.info["method"] == "pixelstats" and det.info["category"] == "pushpins"
    assert main(["register", "--run", "0" * 32, "--name", "x", "--tracking-uri", trial["uri"]]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_with_the_same_scores(trial):
    port = _free_port()
    bindir = str(Path(sys.executable).parent)  # mlflow starts uvicorn from PATH
    path = bindir + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "MLFLOW_TRACKING_URI": trial["uri"], "PATH": path}
    mlflow_bin = str(Path(bindir) / "mlflow")
    model = f"runs:/{trial['run'].info.run_id}/model"
    cmd = [mlflow_bin, "models", "serve", "-m", model, "--env-manager", "local"]
    proc = subprocess.Popen(
        [*cmd, "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env,
        cwd=trial["tmp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/ping", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve did not start: {proc.stderr.read()[-2000:]}")
                time.sleep(0.5)
        table = trial["scores"].head(4)
        body = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[b] for b in _encoded(trial["category"], table["key"])],
            }
        }
        req = urllib.request.Request(
            base + "/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
        rows = answer["predictions"]
        np.testing.assert_allclose([r["score"] for r in rows], table["score"], rtol=1e-6)
        assert [r["label"] for r in rows] == list(table["predicted"])
        # a broken image is the client's error, with the row named
        bad = {"dataframe_split": {"columns": ["image"], "data": [["bm90IGFuIGltYWdl"]]}}
        req = urllib.request.Request(
            base + "/invocations",
            data=json.dumps(bad).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=60)
        assert "row 0" in err.value.read().decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
