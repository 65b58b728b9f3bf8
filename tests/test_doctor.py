"""`orchestrate doctor` on this machine's real parts: a fresh sqlite store in tmp, the tiny
synthetic dataset, real git checkouts in a temp vendor folder, closed and silent ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import git
import numpy as np
import pytest
import yaml

from orchestrator import doctor
from orchestrator.cli import main
from orchestrator.doctor import DoctorOptions, run_checks
from tests.conftest import make_loco, write_png
from tests.upstream import two_commit_repo

NAMES = [name for name, _ in doctor.CHECKS]


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No tracking URI, Ray address or timeout from the calling shell; an empty vendor folder
    (the built-in methods' checkouts absent: a warning)."""
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "ORCHESTRATOR_CONNECT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(vendor))
    return vendor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(out: str) -> dict[str, tuple[str, str]]:
    """``name -> (status, detail)`` of the doctor's lines (one per check, in order)."""
    rows = [ln.split(None, 2) for ln in out.splitlines() if ln.strip()]
    assert [r[0] for r in rows] == NAMES, out
    return {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in rows}


def _doctor(capsys, *args: str) -> tuple[int, dict[str, tuple[str, str]]]:
    code = main(["doctor", *args])
    return code, _lines(capsys.readouterr().out)


def _guarded(name: str, opts: DoctorOptions):
    """One check's result, through run_checks' error handling."""
    (result,) = run_checks(opts, only=[name])
    return result


def _doctor_process(uri: str, dataset_root: Path) -> subprocess.CompletedProcess:
    """`orchestrate doctor` as a user runs it: a fresh process, this environment."""
    argv = [sys.executable, "-m", "orchestrator", "doctor", "--tracking-uri", uri]
    argv += ["--dataset-root", str(dataset_root)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=os.environ.copy())


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


# --- all well ------------------------------------------------------------------------------


def test_healthy_machine_exits_0_one_line_per_check(tmp_path, clean_env, tiny_synthetic):
    """The real command (a fresh process, as a user runs it): exit 0, nine lines, warnings
    allowed (no GPU here, no upstream checkout), nothing written to the store's folder."""
    (tmp_path / "store").mkdir()
    uri = _sqlite(tmp_path)
    start = time.monotonic()
    proc = _doctor_process(uri, tiny_synthetic)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = _lines(proc.stdout)
    assert "Traceback" not in proc.stderr
    assert all(status in ("ok", "warn") for status, _ in lines.values()), proc.stdout
    assert lines["python"][0] == "ok" and lines["python"][1].startswith(sys.version.split()[0])
    assert lines["torch"][0] == "ok" and "torch 2." in lines["torch"][1]
    assert lines["mlflow"] == ("ok", lines["mlflow"][1]) and "new store" in lines["mlflow"][1]
    assert str(tmp_path / "store" / "mlflow.db") in lines["mlflow"][1]
    assert lines["ray"][0] == "ok" and f"{os.cpu_count()} CPUs" in lines["ray"][1]
    assert "local Ray" in lines["ray"][1]
    assert lines["dataset"][0] == "ok" and "full check passed" in lines["dataset"][1]
    assert "flat_connector, pushpins" in lines["dataset"][1]
    assert lines["upstream"][0] == "warn" and "patchcore" in lines["upstream"][1]
    assert list((tmp_path / "store").iterdir()) == []  # checked, not created
    import torch

    if not torch.cuda.is_available():  # a CPU machine: a warning, not a failure
        assert lines["cuda"] == ("warn", lines["cuda"][1]) and "no CUDA device" in lines["cuda"][1]
    print(f"doctor took {elapsed:.1f} s\n{proc.stdout}")
    assert elapsed < 60  # the budget is 15 s on a quiet 2-core machine; headroom for load


def test_existing_store_is_read_not_changed(tmp_path, clean_env, tiny_synthetic, capsys):
    from orchestrator.tracking import get_experiment_id

    (tmp_path / "store").mkdir()
    uri = _sqlite(tmp_path)
    get_experiment_id(uri, "survey")
    db = tmp_path / "store" / "mlflow.db"
    before = db.stat().st_mtime_ns, db.stat().st_size
    code, lines = _doctor(capsys, "--tracking-uri", uri, "--dataset-root", str(tiny_synthetic))
    assert code == 0
    status, detail = lines["mlflow"]
    assert status == "ok" and "MLflow store, 2 experiment(s)" in detail  # Default + survey
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before


# --- the tracking store ----------------------------------------------------------------------


def test_store_in_missing_folder_fails(tmp_path, clean_env, tiny_synthetic, capsys):
    uri = f"sqlite:///{tmp_path / 'no' / 'such' / 'mlflow.db'}"
    code, lines = _doctor(capsys, "--tracking-uri", uri, "--dataset-root", str(tiny_synthetic))
    assert code == 2
    assert lines["mlflow"][0] == "FAIL" and "does not exist" in lines["mlflow"][1]
    assert lines["dataset"][0] == "ok"  # the other checks still ran


def test_store_that_is_no_mlflow_database_fails(tmp_path, clean_env, tiny_synthetic, capsys):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "mlflow.db").write_text("not a database\n" * 100)
    code, lines = _doctor(
        capsys, "--tracking-uri", _sqlite(tmp_path), "--dataset-root", str(tiny_synthetic)
    )
    assert code == 2
    assert lines["mlflow"][0] == "FAIL" and "not a usable database" in lines["mlflow"][1]


def test_tracking_uri_from_environment(tmp_path, clean_env, tiny_synthetic, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'gone' / 'm.db'}")
    code, lines = _doctor(capsys, "--dataset-root", str(tiny_synthetic))
    assert code == 2
    assert lines["mlflow"][0] == "FAIL" and "$MLFLOW_TRACKING_URI" in lines["mlflow"][1]


def test_unreachable_server_fails_within_the_timeout(clean_env, monkeypatch):
    """Nothing listening on a free port of 127.0.0.1: FAIL at once, not after MLflow's
    minutes of retries."""
    monkeypatch.setenv("ORCHESTRATOR_CONNECT_TIMEOUT", "1")
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    result = _guarded("mlflow", DoctorOptions(tracking_uri=uri))
    assert time.monotonic() - start < 5
    assert result.status == "FAIL" and f"cannot reach the MLflow tracking server {uri}" in (
        result.detail
    )


def test_silent_server_is_bounded_by_the_timeout(clean_env, monkeypatch):
    """A port that accepts connections but never answers: FAIL after the timeout."""
    monkeypatch.setenv("ORCHESTRATOR_CONNECT_TIMEOUT", "1.5")
    with socket.socket() as silent:  # the kernel completes the handshake; nobody replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        result = _guarded("mlflow", DoctorOptions(tracking_uri=uri))
        elapsed = time.monotonic() - start
    assert result.status == "FAIL" and "waited at most 1.5 s" in result.detail
    assert 1.4 < elapsed < 6


def test_unreachable_server_line_and_exit_code(tmp_path, clean_env, tiny_synthetic, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CONNECT_TIMEOUT", "1")
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    proc = _doctor_process(uri, tiny_synthetic)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = _lines(proc.stdout)
    assert lines["mlflow"][0] == "FAIL" and uri in lines["mlflow"][1]
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 60


def test_bad_connect_timeout_is_a_fail_line(clean_env, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CONNECT_TIMEOUT", "soon")
    result = _guarded("mlflow", DoctorOptions(tracking_uri="http://127.0.0.1:9"))
    assert result.status == "FAIL" and "ORCHESTRATOR_CONNECT_TIMEOUT" in result.detail


# --- Ray -----------------------------------------------------------------------------------


def test_unreachable_ray_address_fails_fast(clean_env, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CONNECT_TIMEOUT", "1")
    port = _free_port()
    start = time.monotonic()
    ray = _guarded("ray", DoctorOptions(ray_address=f"127.0.0.1:{port}"))
    assert time.monotonic() - start < 5
    assert ray.status == "FAIL" and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in (
        ray.detail
    )
    monkeypatch.setenv("RAY_ADDRESS", "not-an-address")  # from the environment too
    ray = _guarded("ray", DoctorOptions())
    assert ray.status == "FAIL" and "HOST:PORT" in ray.detail


def test_local_ray_is_described_not_started(clean_env):
    import ray

    result = doctor.check_ray(doctor._Context(DoctorOptions(), gpus=0))
    assert result.status == "ok"
    assert f"{os.cpu_count()} CPUs, 0 GPUs would be used" in result.detail
    assert not ray.is_initialized()


# --- upstream checkouts ----------------------------------------------------------------------


@pytest.fixture
def widget(tmp_path, clean_env):
    """A real upstream repository with two commits (pinned to the first), a user registry
    naming it, and its checkout synced into the temp vendor folder."""
    src = tmp_path / "mirror" / "acme" / "widget"
    first, second = two_commit_repo(src)
    reg = tmp_path / "reg.yaml"
    entry = {
        "adapter": "adapters.pixelstats:PixelStats",
        "repo": f"file://{src}",
        "commit": first,
        "default": False,
    }
    reg.write_text(yaml.safe_dump({"methods": {"widget": entry}}))
    assert main(["vendor", "sync", "widget", "--registry", str(reg)]) == 0
    return reg, clean_env / "widget", second


def test_checkout_at_pin_clean_modified_and_off_pin(widget, capsys):
    reg, checkout, second = widget

    def upstream() -> tuple[str, str]:
        result = _guarded("upstream", DoctorOptions(registry=reg))
        return result.status, result.detail

    capsys.readouterr()
    status, detail = upstream()  # widget usable, the built-in methods not checked out
    assert status == "warn" and "widget at pin, clean" in detail and "patchcore" in detail

    (checkout / "model.py").write_text("X = 99\n")  # modified
    status, detail = upstream()
    assert status == "FAIL" and "widget: modified or untracked files" in detail

    git.Repo(checkout).git.checkout("--", "model.py")
    git.Repo(checkout).git.checkout(second)  # clean, but not the pinned commit
    status, detail = upstream()
    assert status == "FAIL" and "is not the pinned commit" in detail

    git.Repo(checkout).git.checkout("--detach", "HEAD~1")  # back at the pin
    (checkout / "notes.txt").write_text("")  # untracked
    assert upstream()[0] == "FAIL"


def test_dirty_checkout_makes_the_command_exit_2(widget, tiny_synthetic, tmp_path, capsys):
    reg, checkout, _ = widget
    (checkout / "model.py").write_text("X = 99\n")
    (tmp_path / "store").mkdir()
    code, lines = _doctor(
        capsys,
        "--registry",
        str(reg),
        "--tracking-uri",
        _sqlite(tmp_path),
        "--dataset-root",
        str(tiny_synthetic),
    )
    assert code == 2
    assert lines["upstream"][0] == "FAIL" and "widget" in lines["upstream"][1]
    assert [n for n, (s, _) in lines.items() if s == "FAIL"] == ["upstream"]


def test_broken_registry_is_fail_lines_not_a_crash(tmp_path, clean_env, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [this, is, not, a, mapping\n")
    results = {r.name: r for r in run_checks(DoctorOptions(registry=bad))}
    assert list(results) == NAMES
    assert results["upstream"].status == "FAIL" and results["weights"].status == "FAIL"
    assert "registry" in results["upstream"].detail


# --- weights -------------------------------------------------------------------------------


def test_weights_line_names_each_default_backbone(clean_env):
    from adapters.common.weights import find_weights
    from orchestrator.cli.weights import backbone_uses
    from orchestrator.registry import load_registry

    reg = load_registry()
    uses = backbone_uses(SimpleNamespace(methods={n: reg.methods[n] for n in reg.available()}))
    result = _guarded("weights", DoctorOptions())
    for backbone in uses:
        assert backbone in result.detail
    found = {b for b in uses if find_weights(b) is not None}
    assert result.status == ("ok" if found == set(uses) else "warn")
    assert "efficientnet_lite0 (quick)" in result.detail.split(";")[0]  # shipped by a package


def test_corrupt_cached_weights_fail(tmp_path, clean_env, monkeypatch):
    from adapters.common.weights import weights_spec

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = weights_spec("wide_resnet50_2")
    cached = tmp_path / "torch" / "hub" / "checkpoints" / spec.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the weights")
    result = _guarded("weights", DoctorOptions())
    assert result.status == "FAIL" and "wide_resnet50_2" in result.detail
    assert "sha256" in result.detail


# --- the dataset ---------------------------------------------------------------------------


def test_bad_dataset_roots_fail(tmp_path, clean_env, capsys):
    (tmp_path / "store").mkdir()
    store = ["--tracking-uri", _sqlite(tmp_path)]
    code, lines = _doctor(capsys, *store, "--dataset-root", str(tmp_path / "nothing"))
    assert code == 2 and lines["dataset"][0] == "FAIL" and "does not exist" in lines["dataset"][1]
    (tmp_path / "empty").mkdir()
    code, lines = _doctor(capsys, *store, "--dataset-root", str(tmp_path / "empty"))
    assert code == 2 and "no category folders" in lines["dataset"][1]
    code, lines = _doctor(capsys, *store, "--dataset", "custom")
    assert code == 2 and "needs --dataset-root" in lines["dataset"][1]


def test_dataset_with_a_validator_problem_fails(tmp_path, clean_env, capsys):
    root = tmp_path / "parts"
    cat = make_loco(root)
    (tmp_path / "store").mkdir()
    args = ["--tracking-uri", _sqlite(tmp_path), "--dataset-root", str(root)]
    code, lines = _doctor(capsys, *args)
    assert code == 0 and lines["dataset"][0] == "ok", lines["dataset"]
    write_png(  # a mask of the wrong size: what `orchestrate datasets check` reports
        cat / "ground_truth" / "structural_anomalies" / "000" / "000.png",
        np.full((20, 20), 2, np.uint8),
    )
    code, lines = _doctor(capsys, *args)
    assert code == 2
    status, detail = lines["dataset"]
    assert status == "FAIL" and "1 problem(s)" in detail and "differs from its image" in detail


def test_large_dataset_gets_a_quick_check(tmp_path, clean_env, monkeypatch, capsys):
    """Above the size limit only the layout is checked (and says so); a missing mask is still
    found; --full-dataset-check reads everything."""
    root = tmp_path / "parts"
    cat = make_loco(root)
    write_png(  # wrong size: only the full validator reads this file
        cat / "ground_truth" / "structural_anomalies" / "000" / "000.png",
        np.full((20, 20), 2, np.uint8),
    )
    monkeypatch.setattr(doctor.base, "FULL_CHECK_MAX_FILES", 5)
    result = _guarded("dataset", DoctorOptions(dataset_root=root))
    assert result.status == "ok" and "quick check passed" in result.detail
    full = _guarded("dataset", DoctorOptions(dataset_root=root, full_dataset_check=True))
    assert full.status == "FAIL" and "differs from its image" in full.detail
    shutil.rmtree(cat / "ground_truth" / "logical_anomalies")  # the anomaly has no masks now
    result = _guarded("dataset", DoctorOptions(dataset_root=root))
    assert result.status == "FAIL" and "quick check found" in result.detail
    assert "logical_anomalies/000.png: anomalous image without masks" in result.detail


def test_a_check_that_raises_anything_is_a_fail_line(clean_env):
    """Not only UserErrors: a wrong type deep in the data layer is reported, not raised."""
    opts = DoctorOptions(dataset_root=12345)  # type: ignore[arg-type]
    results = {r.name: r for r in run_checks(opts)}
    assert list(results) == NAMES
    assert results["dataset"].status == "FAIL"
    assert "TypeError" in results["dataset"].detail
