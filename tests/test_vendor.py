"""Vendoring against real git repositories made in a temp dir (no network)."""

from pathlib import Path

import git
import pytest
import yaml

from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.registry import load_registry
from orchestrator.vendor import checkout_state, mirror_source, resolve_source, sync
from orchestrator.vendor.checkout import owner_name


@pytest.fixture
def upstream(tmp_path):
    """An 'upstream' repo under <mirror>/acme/widget with two commits; pin the first."""
    path = tmp_path / "mirror" / "acme" / "widget"
    repo = git.Repo.init(path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.org")
    (path / "model.py").write_text("X = 1\n")
    repo.index.add(["model.py"])
    first = repo.index.commit("first").hexsha
    (path / "model.py").write_text("X = 2\n")
    repo.index.add(["model.py"])
    second = repo.index.commit("second").hexsha
    return path, first, second


@pytest.fixture
def registry(tmp_path, upstream):
    path, first, _ = upstream
    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text(
        yaml.safe_dump(
            {
                "methods": {
                    "widget": {
                        "adapter": "adapters.pixelstats:PixelStats",
                        "repo": f"file://{path}",
                        "commit": first,
                        "params": {"grid": [8, 8], "seed": 0},
                        "default": False,
                    }
                }
            }
        )
    )
    return reg_file


def test_clone_pin_detect_modified_and_wrong_head_resync(tmp_path, upstream, registry):
    _, first, second = upstream
    root = tmp_path / "vendor"
    entry = load_registry(registry).methods["widget"]
    assert not checkout_state("widget", first, root).present
    out = sync([entry], root=root)
    assert "cloned" in out[0]
    st = checkout_state("widget", first, root)
    assert st.usable and st.head == first
    assert (root / "widget" / "model.py").read_text() == "X = 1\n"
    assert "already at" in sync([entry], root=root)[0]  # idempotent

    (root / "widget" / "model.py").write_text("X = 99\n")
    st = checkout_state("widget", first, root)
    assert st.at_pin and not st.clean and "modified" in st.problem
    with pytest.raises(UserError, match="modified"):
        sync([entry], root=root)
    git.Repo(root / "widget").git.checkout("--", "model.py")

    git.Repo(root / "widget").git.checkout(second)
    st = checkout_state("widget", first, root)
    assert not st.at_pin and "not the pinned commit" in st.problem
    assert "fetched" in sync([entry], root=root)[0]
    assert checkout_state("widget", first, root).usable


def test_mirror_lookup_bare_and_normal(tmp_path, upstream):
    path, first, _ = upstream
    mirror = path.parent.parent
    assert mirror_source("https://github.com/acme/widget", str(mirror)) == str(path)
    bare = tmp_path / "m2" / "acme" / "widget.git"
    git.Repo.clone_from(str(path), bare, bare=True)
    assert mirror_source("https://github.com/acme/widget", str(tmp_path / "m2")) == str(bare)
    with pytest.raises(UserError, match="neither acme/other"):
        mirror_source("https://github.com/acme/other", str(mirror))
    assert owner_name("git@github.com:acme/widget.git") == ("acme", "widget")


def test_sync_from_mirror_env(tmp_path, upstream, monkeypatch):
    path, first, _ = upstream
    monkeypatch.setenv("ORCHESTRATOR_VENDOR_MIRROR", str(path.parent.parent))
    entry = type(
        "E", (), {"name": "widget", "repo": "https://github.com/acme/widget", "commit": first}
    )()
    out = sync([entry], root=tmp_path / "v")
    assert "mirror/acme/widget" in out[0]
    assert checkout_state("widget", first, tmp_path / "v").usable


class _Up:
    sources = ("upstream", "native")


def test_resolve_source_auto_upstream_and_refusal(tmp_path, upstream, registry):
    _, first, _ = upstream
    root = tmp_path / "vendor"
    entry = load_registry(registry).methods["widget"]
    assert resolve_source(entry, _Up, "auto", root=root)[0] == "native"  # no checkout yet
    with pytest.raises(UserError, match="refusing the upstream checkout"):
        resolve_source(entry, _Up, "upstream", root=root)
    sync([entry], root=root)
    src, st = resolve_source(entry, _Up, "auto", root=root)
    assert src == "upstream" and st.head == first
    (root / "widget" / "extra.py").write_text("")
    assert resolve_source(entry, _Up, "auto", root=root)[0] == "native"  # dirty: not used
    with pytest.raises(UserError, match="--allow-dirty"):
        resolve_source(entry, _Up, "upstream", root=root)
    src, st = resolve_source(entry, _Up, "upstream", allow_dirty=True, root=root)
    assert src == "upstream" and st.clean is False


def test_vendor_cli(tmp_path, upstream, registry, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    assert main(["vendor", "sync", "widget", "--registry", str(registry)]) == 0
    assert main(["vendor", "status", "--registry", str(registry)]) == 0
    out = capsys.readouterr().out
    assert "cloned" in out and "widget" in out and "yes      yes     yes" in out
    assert Path(tmp_path / "vendor" / "widget" / "model.py").exists()
