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
from tests.upstream import two_commit_repo


@pytest.fixture
def upstream(tmp_path):
    """An 'upstream' repo under <mirror>/acme/widget with two commits; pin the first."""
    path = tmp_path / "mirror" / "acme" / "widget"
    first, second = two_commit_repo(path)
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


# --- git failures and dangerous URLs -------------------------------------------------------


def _user_registry(tmp_path, repo: str, commit: str, name: str = "reg.yaml") -> Path:
    reg_file = tmp_path / name
    reg_file.write_text(
        yaml.safe_dump(
            {
                "methods": {
                    "widget": {
                        "adapter": "adapters.pixelstats:PixelStats",
                        "repo": repo,
                        "commit": commit,
                        "default": False,
                    }
                }
            }
        )
    )
    return reg_file


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _off_pin_checkout(tmp_path, registry, monkeypatch):
    """A checkout in vendor/widget whose HEAD is not the pin: sync then fetches."""
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    assert main(["vendor", "sync", "widget", "--registry", str(registry)]) == 0
    repo = git.Repo(tmp_path / "vendor" / "widget")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t").set_value("user", "email", "t@example.org")
    repo.index.commit("local")
    return repo


def test_unreachable_repo_or_mirror_is_one_line_error(
    tmp_path, upstream, registry, monkeypatch, capsys
):
    _, first, _ = upstream
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    bad = _user_registry(tmp_path, "file:///nonexistent/x.git", first, "bad.yaml")
    assert main(["vendor", "sync", "widget", "--registry", str(bad)]) == 2
    line = _one_line_error(capsys)
    assert "git clone from file:///nonexistent/x.git failed" in line
    assert "does not appear to be a git repository" in line
    # a mirror folder that has acme/widget, but not as a git repository
    (tmp_path / "m" / "acme" / "widget").mkdir(parents=True)
    args = ["vendor", "sync", "widget", "--registry", str(registry)]
    assert main([*args, "--mirror", str(tmp_path / "m")]) == 2
    assert "git clone from" in _one_line_error(capsys)
    assert main([*args, "--mirror", "/nonexistent"]) == 2
    assert "has neither acme/widget" in _one_line_error(capsys)
    assert not (tmp_path / "vendor" / "widget").exists()
    # the fetch path (a checkout off the pin) too
    capsys.readouterr()
    _off_pin_checkout(tmp_path, registry, monkeypatch)
    capsys.readouterr()
    assert main(["vendor", "sync", "widget", "--registry", str(bad)]) == 2
    assert "git fetch from file:///nonexistent/x.git failed" in _one_line_error(capsys)


DANGEROUS = [
    "ext::sh -c touch% {marker}",
    "--upload-pack=touch {marker}",
    "-u touch {marker}",
    " --upload-pack=touch {marker}",
    "ext://sh -c touch% {marker}",
    "fd::3",
    "ftp://example.org/acme/widget.git",
    "ssh://-oProxyCommand=touch% {marker}/acme/widget",
    "git@-oProxyCommand=touch:acme/widget",
]


@pytest.mark.parametrize("template", DANGEROUS)
def test_dangerous_repo_urls_refused_before_git(
    tmp_path, upstream, registry, monkeypatch, capsys, template
):
    _, first, _ = upstream
    marker = tmp_path / "PWNED"
    bad = _user_registry(tmp_path, template.format(marker=marker), first, "bad.yaml")
    _off_pin_checkout(tmp_path, registry, monkeypatch)  # fetch path (clone path below)
    capsys.readouterr()
    monkeypatch.setattr(git.cmd.Git, "_call_process", _refuse_clone_fetch(git.cmd.Git))
    assert main(["vendor", "sync", "widget", "--registry", str(bad)]) == 2
    assert "error: refusing URL" in _one_line_error(capsys)
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "fresh"))
    assert main(["vendor", "sync", "widget", "--registry", str(bad)]) == 2
    assert "error: refusing URL" in _one_line_error(capsys)
    assert not marker.exists() and not (tmp_path / "fresh" / "widget").exists()


def _refuse_clone_fetch(cls):
    original = cls._call_process

    def spy(self, method, *args, **kwargs):
        assert method not in ("clone", "fetch"), f"git {method} was called: {args}"
        return original(self, method, *args, **kwargs)

    return spy


def test_dangerous_mirror_refused_before_git(tmp_path, registry, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    monkeypatch.setattr(git.cmd.Git, "_call_process", _refuse_clone_fetch(git.cmd.Git))
    args = ["vendor", "sync", "widget", "--registry", str(registry), "--mirror"]
    for mirror in (f"ext::sh -c touch% {marker} #://", f"--upload-pack=touch {marker}"):
        assert main([*args, mirror]) == 2
        assert "error: refusing mirror" in _one_line_error(capsys)
    monkeypatch.setenv("ORCHESTRATOR_VENDOR_MIRROR", f"ext::sh -c touch% {marker} #://")
    assert main(args[:-1]) == 2
    assert "error: refusing mirror" in _one_line_error(capsys)
    assert not marker.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/widget",
        "http://example.org/acme/widget.git",
        "ssh://git@example.org/acme/widget.git",
        "git://example.org/acme/widget.git",
        "file:///srv/mirror/acme/widget",
        "git@github.com:acme/widget.git",
        "myhost:acme/widget.git",  # an ssh alias, scp-style without a user
        "/srv/mirror/acme/widget",
        "mirror/acme/widget",
    ],
)
def test_allowed_urls(url):
    from orchestrator.vendor.checkout import check_url

    assert check_url(url) == url


def test_git_runs_without_ext_transport_even_if_allowed_by_config(
    tmp_path, upstream, registry, monkeypatch
):
    """Defence in depth: with the URL check bypassed and the user's git config allowing
    ``ext``, the git processes still refuse the transport (GIT_ALLOW_PROTOCOL,
    protocol.ext.allow=never)."""
    from orchestrator.vendor import checkout

    _, first, _ = upstream
    marker = tmp_path / "PWNED"
    _off_pin_checkout(tmp_path, registry, monkeypatch)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.ext.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "always")
    monkeypatch.setattr(checkout, "check_url", lambda url, what="URL": url)
    entry = type(
        "E", (), {"name": "widget", "repo": f"ext::sh -c touch% {marker}", "commit": first}
    )()
    with pytest.raises(UserError, match="git fetch from ext::.* failed.*not allowed"):
        sync([entry], root=tmp_path / "vendor")
    assert not marker.exists()
    env = checkout.git_env()
    assert env["GIT_CONFIG_KEY_1"] == "protocol.ext.allow" and env["GIT_CONFIG_VALUE_1"] == "never"
    assert env["GIT_CONFIG_COUNT"] == "2" and "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")


def test_sync_never_writes_outside_the_vendor_directory(tmp_path, upstream):
    path, first, _ = upstream
    root = tmp_path / "vendor"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)

    def entry(name, checkout=None):
        return type(
            "E", (), {"name": name, "checkout": checkout, "repo": f"file://{path}", "commit": first}
        )()

    good = entry("widget")
    for bad in (
        entry("../escape"),
        entry("widget", "../outside"),
        entry("widget", "."),
        entry("linked"),
        entry("widget", str(outside / "abs")),
    ):
        with pytest.raises(UserError, match="outside the vendor directory"):
            sync([good, bad], root=root)  # checked before any entry is synced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "outside", "vendor"]
    assert not any(outside.iterdir()) and sorted(p.name for p in root.iterdir()) == ["linked"]
    assert "cloned" in sync([good], root=root)[0]


def test_passwords_in_urls_stay_out_of_messages(tmp_path, upstream, monkeypatch, capsys):
    _, first, _ = upstream
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "vendor"))
    reg = _user_registry(tmp_path, "http://bob:s3cret@127.0.0.1:9/acme/widget.git", first)
    assert main(["vendor", "sync", "widget", "--registry", str(reg)]) == 2
    line = _one_line_error(capsys)
    assert "s3cret" not in line and "bob" not in line and "***@127.0.0.1:9" in line
