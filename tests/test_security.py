"""Nothing listens beyond loopback; nothing beside a registry file is imported but the
adapter module it names (and never one shadowing an installed module)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from orchestrator.registry import load_registry
from tests.conftest import make_loco


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _listening(procs: list[psutil.Process]) -> set[tuple[str, str, int]]:
    pids = {p.pid: p for p in procs}
    out = set()
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                name = pids[c.pid].name()
            except psutil.NoSuchProcess:
                continue
            out.add((name, c.laddr.ip, c.laddr.port))
    return out


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_a_running_survey_listens_on_loopback_only(tmp_path):
    """Every listening socket of the survey's process tree (driver, gcs_server, raylet,
    workers, agents), sampled while it runs, is bound to a loopback address."""
    make_loco(tmp_path / "data")
    argv = [
        "survey", "--dataset", str(tmp_path / "data"), "--methods", "pixelstats",
        "--seeds", "0,1", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
    ]  # fmt: skip
    code = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: set[tuple[str, str, int]] = set()
    names: set[str] = set()
    try:
        while proc.poll() is None:
            procs = _tree(proc.pid)
            seen |= _listening(procs)
            for p in procs:
                try:
                    names.add(p.name())
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.3)
        out = proc.stdout.read()
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert {"gcs_server", "raylet"} <= names, names  # the sampling saw Ray running
    assert any(n == "gcs_server" for n, _, _ in seen), seen
    wide = sorted(s for s in seen if not _loopback(s[1]))
    assert not wide, f"listening beyond loopback: {wide}"


def test_registry_folder_is_not_put_on_sys_path(tmp_path):
    """A `ray.py` (and a `json.py`) beside a registry are never imported, by any command;
    the adapter module the registry names is."""
    (tmp_path / "ray.py").write_text("open(__file__ + '.ran', 'w').close()\n")
    (tmp_path / "json.py").write_text("open(__file__ + '.ran', 'w').close()\n")
    (tmp_path / "my_adapter.py").write_text(
        "from adapters.pixelstats import PixelStats\n\nclass Mine(PixelStats):\n    name = 'mine'\n"
    )
    (tmp_path / "reg.yaml").write_text(
        "methods:\n  mine:\n    adapter: my_adapter:Mine\n    default: false\n"
    )
    script = textwrap.dedent(f"""
        import sys
        from orchestrator.cli import main
        from orchestrator.registry import load_registry
        reg = load_registry({str(tmp_path / "reg.yaml")!r})
        assert reg.methods["mine"].available, reg.methods["mine"].import_error
        assert main(["methods", "--registry", {str(tmp_path / "reg.yaml")!r}]) == 0
        assert main(["vendor", "status", "--registry", {str(tmp_path / "reg.yaml")!r}]) == 0
        import ray, json
        assert {str(tmp_path)!r} not in sys.path
        print(ray.__file__, json.__file__)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "site-packages" in p.stdout
    assert not (tmp_path / "ray.py.ran").exists()
    assert not (tmp_path / "json.py.ran").exists()
    assert "mine" in p.stdout


def test_adapter_shadowing_an_installed_module_is_refused(tmp_path):
    (tmp_path / "yaml.py").write_text("raise SystemExit('the shadow ran')\n")
    (tmp_path / "reg.yaml").write_text("methods:\n  mine:\n    adapter: yaml:Mine\n")
    with pytest.raises(Exception, match="would shadow"):
        load_registry(tmp_path / "reg.yaml")


def test_adapter_package_beside_registry_imports_with_submodules(tmp_path):
    pkg = tmp_path / "my_pkg_ad"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "impl.py").write_text(
        "from adapters.pixelstats import PixelStats\n\nclass Deep(PixelStats):\n    name = 'deep'\n"
    )
    (tmp_path / "reg.yaml").write_text(
        "methods:\n  deep:\n    adapter: my_pkg_ad.sub.impl:Deep\n    default: false\n"
    )
    reg = load_registry(tmp_path / "reg.yaml")
    assert reg.methods["deep"].available, reg.methods["deep"].import_error
    assert reg.build("deep").name == "deep"
    assert str(tmp_path) not in sys.path
