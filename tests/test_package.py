"""The project as an installed package: a real wheel, installed with pip, run outside the
checkout (registry.yaml packaged, vendor folder under the cache folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from mlflow import MlflowClient

from orchestrator.paths import REPO_ROOT, source_checkout

#: what the installed copy reports about itself (one line each)
PROBE = """
import adapters, orchestrator
from orchestrator.paths import source_checkout, vendor_dir
from orchestrator.registry import BUILTIN_REGISTRY
print(orchestrator.__file__)
print(adapters.__file__)
print(BUILTIN_REGISTRY)
print(vendor_dir())
print(source_checkout())
"""


def _copy_checkout(dest: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files, copied to ``dest`` (so the
    build leaves no build/ or *.egg-info in the checkout)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():  # not a file deleted in the work tree
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    res = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert res.returncode == 0, f"{args[:4]} exited {res.returncode}:\n{res.stderr[-3000:]}"
    return res


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    assert source_checkout() == REPO_ROOT  # the tests themselves run from the checkout
    src = _copy_checkout(tmp_path / "src")
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(dist)],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("ad_orchestrator-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged = zf.read("orchestrator/registry.yaml")
    assert packaged == (REPO_ROOT / "registry.yaml").read_bytes()
    assert {"orchestrator/cli/__init__.py", "adapters/pixelstats.py"} <= names
    assert not any(n.startswith(("tests/", "vendor/")) for n in names)
    # an sdist carries the root file too, so a wheel built from it has the packaged copy
    sdist = tmp_path / "sdist"
    build = f"from setuptools import build_meta; build_meta.build_sdist({str(sdist)!r})"
    _run([sys.executable, "-c", build], cwd=src)
    (tarball,) = sdist.glob("ad_orchestrator-*.tar.gz")
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(tarball), "-w", str(sdist)],
        cwd=tmp_path,
    )
    with zipfile.ZipFile(next(sdist.glob("ad_orchestrator-*.whl"))) as zf:
        assert zf.read("orchestrator/registry.yaml") == packaged

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)], cwd=tmp_path)
    work = tmp_path / "work"  # outside the checkout: nothing of it on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(
        PYTHONPATH=str(site), ORCHESTRATOR_CACHE=str(tmp_path / "cache"), ORCHESTRATOR_OFFLINE="1"
    )
    py = [sys.executable, "-P"]  # -P: not the cwd on sys.path either

    probed = _run([*py, "-c", PROBE], cwd=work, env=env).stdout.splitlines()[-5:]
    module, adapters, registry, vendor = (Path(p).resolve() for p in probed[:4])
    site = site.resolve()
    assert module.is_relative_to(site) and adapters.is_relative_to(site), probed
    assert registry == site / "orchestrator" / "registry.yaml" and probed[4] == "None"
    assert vendor == (tmp_path / "cache" / "vendor").resolve()
    assert not vendor.is_relative_to(REPO_ROOT)

    # `methods` runs beside the survey (which mostly waits on Ray and MLflow): a shorter test
    methods = subprocess.Popen(
        [*py, "-m", "orchestrator", "methods"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    data = tmp_path / "data"
    synth = ["datasets", "synth", "--out", str(data), "--categories", "pushpins"]
    _run(
        [*py, "-m", "orchestrator", *synth, "--size", "64x64", "--train", "6", "--test", "2"],
        cwd=work,
        env=env,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    survey = ["survey", "--dataset", str(data), "--categories", "pushpins", "--methods",
              "pixelstats", "--tracking-uri", uri, "--experiment", "pkg", "--num-cpus", "2",
              "--profile", "quick", "--output-dir", str(tmp_path / "reports")]  # fmt: skip
    _run([*py, "-m", "orchestrator", *survey], cwd=work, env=env)

    out, err = methods.communicate(timeout=120)
    assert methods.returncode == 0, err[-3000:]
    for name in ("patchcore", "simplenet", "csflow", "draem", "revdist", "pixelstats"):
        assert name in out, out

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("pkg")
    runs = client.search_runs([exp.experiment_id], "tags.method = 'pixelstats'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["category"] == "pushpins"
    assert "image_auroc_mean" in runs[0].data.metrics
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    # an installed copy names itself by version, not by the git repository it runs in
    assert parent.data.tags["project_commit"] == "ad-orchestrator==0.1.0"


def test_source_checkout_needs_the_projects_own_files(tmp_path, monkeypatch):
    """A folder is a source checkout only with registry.yaml, adapters/ and this project's
    pyproject.toml; the vendor folder follows (``$ORCHESTRATOR_VENDOR`` first)."""
    from orchestrator import paths

    for name in ("pyproject.toml", "registry.yaml"):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    (tmp_path / "adapters").mkdir()
    assert paths.source_checkout(tmp_path) == tmp_path
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("ORCHESTRATOR_VENDOR", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    assert paths.vendor_dir() == tmp_path / "vendor"
    assert paths.builtin_registry() == tmp_path / "registry.yaml"
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "elsewhere"))
    assert paths.vendor_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("ORCHESTRATOR_VENDOR")

    pyproject = tmp_path / "pyproject.toml"
    for text in ('[project]\nname = "someone-else"\n', "not = [toml", ""):
        pyproject.write_text(text)
        assert paths.source_checkout(tmp_path) is None, text
        assert paths.vendor_dir() == tmp_path / "cache" / "vendor"
        assert paths.builtin_registry() == paths.PACKAGE_DIR / "registry.yaml"
    shutil.copy2(REPO_ROOT / "pyproject.toml", pyproject)
    (tmp_path / "adapters").rmdir()
    assert paths.source_checkout(tmp_path) is None
