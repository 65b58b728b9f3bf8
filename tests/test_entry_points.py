"""Third-party adapters plug in through the ``orchestrator.adapters`` entry-point group."""

import subprocess
import sys
import textwrap

import pytest

from adapters.conformance import check_adapter
from orchestrator.cli import main
from orchestrator.registry import load_registry

ADAPTER_SRC = textwrap.dedent('''
    from adapters.pixelstats import PixelStats

    class Thirdparty(PixelStats):
        """A third party's method (a renamed PixelStats for the test)."""
        name = "thirdparty"
''')


def _make_package(root):
    pkg = root / "thirdparty_ad"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(ADAPTER_SRC)
    return pkg


def test_entry_point_from_dist_info_on_sys_path(tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    _make_package(site)
    info = site / "thirdparty_ad-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-ad\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[orchestrator.adapters]\nthirdparty = thirdparty_ad:Thirdparty\n"
    )
    monkeypatch.syspath_prepend(str(site))
    reg = load_registry()
    entry = reg.methods["thirdparty"]
    assert entry.available and entry.origin.startswith("entry point")
    assert entry.params["grid"] == [32, 32]  # from the class' default_config
    adapter = reg.build("thirdparty")
    assert check_adapter(lambda: reg.build("thirdparty")).passed
    assert adapter.name == "thirdparty"
    assert main(["methods"]) == 0
    assert "thirdparty" in capsys.readouterr().out


@pytest.mark.heavy
def test_entry_point_from_pip_installed_package(tmp_path):
    """Install a throwaway package into this environment, list and run it, uninstall it."""
    _make_package(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "thirdparty-ad"
        version = "0.1"
        [project.entry-points."orchestrator.adapters"]
        thirdparty = "thirdparty_ad:Thirdparty"
        [tool.setuptools]
        packages = ["thirdparty_ad"]
    """)
    )
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-build-isolation", str(tmp_path)], check=True
    )
    try:
        out = subprocess.run(
            [sys.executable, "-m", "orchestrator", "methods"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "thirdparty" in out
        code = (
            "from orchestrator.registry import load_registry; "
            "from adapters.conformance import check_adapter; "
            "r = load_registry(); print(check_adapter(lambda: r.build('thirdparty')))"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path.parent,
        )
        assert "checks passed" in res.stdout
    finally:
        subprocess.run([*pip, "uninstall", "-q", "-y", "thirdparty-ad"], check=True)
