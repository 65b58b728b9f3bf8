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


def _dist(site, name: str, entry_points: str, files: dict[str, str]) -> None:
    """A dist-info on ``site`` with ``entry_points`` (lines of the adapters group)."""
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(textwrap.dedent(text))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[orchestrator.adapters]\n{entry_points}\n")


DECLARING = """
    from adapters.pixelstats import PixelStats

    class Declaring(PixelStats):
        name = "declaring"
        registry_entry = {
            "repo": "https://example.org/declaring.git",
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "license": "MIT",
            "paper": "A. Author, A method, 2026",
            "params": {"grid": [16, 16], "smoothing_sigma": 1.0, "eps": 0.01, "seed": 0},
            "profiles": {"quick": {"grid": [8, 8]}},
            "resources": {"gpu": 0, "cpu": 1, "memory_gb": 2},
        }
"""


def test_plugin_declares_its_entry_and_a_user_profile_adds_to_it(tmp_path, monkeypatch):
    """The class' registry_entry (pin, licence, params, profiles, resources) is the plugin's
    entry; a user registry adds a profile without repeating the params, and only replaces
    the keys it names. A plain plugin takes a profile over its default_config too."""
    site = tmp_path / "site"
    _dist(
        site,
        "declaring_ad",
        "declaring = declaring_ad:Declaring\nplainplug = thirdparty_ad:Thirdparty",
        {"declaring_ad/__init__.py": DECLARING, "thirdparty_ad/__init__.py": ADAPTER_SRC},
    )
    monkeypatch.syspath_prepend(str(site))
    user = tmp_path / "user.yaml"
    user.write_text(
        "methods:\n"
        "  declaring:\n    profiles: {quick: {grid: [4, 4]}, tiny: {eps: 0.5}}\n"
        "  plainplug:\n    profiles: {quick: {grid: [8, 8]}}\n"
    )
    plain = load_registry().methods["declaring"]
    assert plain.commit == "0123456789abcdef0123456789abcdef01234567"
    assert plain.license == "MIT" and plain.resources.memory_gb == 2
    assert plain.resolved_config("quick")["grid"] == [8, 8]
    reg = load_registry(user)
    e = reg.methods["declaring"]
    assert e.repo == "https://example.org/declaring.git" and e.params["grid"] == [16, 16]
    assert e.resolved_config("quick")["grid"] == [4, 4]
    assert e.resolved_config("tiny")["eps"] == 0.5
    assert reg.methods["plainplug"].resolved_config("quick")["grid"] == [8, 8]


def test_plugin_named_like_a_builtin_is_ignored_once_with_a_reason(tmp_path, monkeypatch, capsys):
    import orchestrator.registry as registry

    site = tmp_path / "site"
    _dist(site, "clash_ad", "patchcore = thirdparty_ad:Thirdparty", {
        "thirdparty_ad/__init__.py": ADAPTER_SRC,
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_WARNED", set())
    for _ in range(2):
        reg = load_registry()
    assert reg.methods["patchcore"].adapter == "adapters.patchcore:PatchCore"
    err = capsys.readouterr().err
    assert err.count("entry point 'patchcore' of clash_ad") == 1, err
    assert "built-in method 'patchcore' has that name and wins" in err


def test_broken_plugin_is_listed_and_refused(tmp_path, monkeypatch, capsys):
    """A plugin whose import fails: `methods` lists it as broken with the error (the other
    methods still work); a survey naming it refuses in one line before anything starts."""
    site = tmp_path / "site"
    _dist(site, "broken_ad", "brokenplug = broken_ad:Nope", {
        "broken_ad/__init__.py": "raise RuntimeError('plugin import exploded')\n",
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "brokenplug" in out and "broken" in out
    assert "RuntimeError: plugin import exploded" in out
    code = main(["survey", "--methods", "brokenplug", "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: method 'brokenplug' is not available"), err
    assert "plugin import exploded" in lines[-1]
    assert not (tmp_path / "m.db").exists()


def test_methods_table_is_aligned_and_says_no_licence_plainly(tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    _dist(site, "long_ad", "a-plugin-with-a-long-name = thirdparty_ad:Thirdparty", {
        "thirdparty_ad/__init__.py": ADAPTER_SRC,
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], [ln for ln in lines[2:] if ln and not ln.startswith(("*", "broken"))]
    plugin = next(r for r in rows if r.startswith("a-plugin-with-a-long-name"))
    assert "None" not in plugin
    for col in ("status", "sources", "pin", "license", "resources"):
        at = header.index(col)
        assert all(r[at - 2 : at] == "  " and r[at] != " " for r in rows), (col, rows)
